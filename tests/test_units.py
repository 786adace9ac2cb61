"""One unit family, scaled for reading: the same prefix for a whole table or axis."""

from __future__ import annotations

import math

import pytest

from compresslab import units


@pytest.mark.parametrize(
    ("values", "unit"),
    [
        ([2e-3, 4e-4], "mJ"),
        ([5e-6, 9e-5], "µJ"),
        ([1.5, 0.2], "J"),
        ([3e-8], "nJ"),
        ([1200.0], "J"),
        ([math.nan, 2e-3], "mJ"),
        ([], "J"),
    ],
)
def test_one_prefix_for_a_column(values: list[float], unit: str) -> None:
    factor, name = units.energy_unit(values)
    assert name == unit
    finite = [v for v in values if v == v]
    if finite and name != "J":
        assert 1 <= max(finite) * factor < 1000


def test_formatting_and_projections() -> None:
    assert units.format_energy(0.00123) == "1.23 mJ"
    assert units.format_energy(0.00123, (1e6, "µJ")) == "1.23e+03 µJ"
    assert units.format_energy(math.nan) == "-"
    assert units.wh_per_million(3.6e-3) == pytest.approx(1.0)
    assert units.kwh_per_million(3.6) == pytest.approx(1.0)
