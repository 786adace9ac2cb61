from __future__ import annotations

import math

import pytest

from compresslab.stats import ci95_halfwidth, cv, paired_ratio, t95


def test_t_quantiles_and_halfwidth() -> None:
    assert t95(1) == pytest.approx(12.706) and t95(1000) == pytest.approx(1.96)
    assert ci95_halfwidth([1.0, 1.0, 1.0]) == 0.0
    assert ci95_halfwidth([1.0, 3.0]) == pytest.approx(12.706 * math.sqrt(2) / math.sqrt(2))
    assert ci95_halfwidth([1.0]) == math.inf and cv([2.0]) == math.inf


def test_paired_ratio_is_the_geometric_mean_of_the_pairs() -> None:
    r = paired_ratio([1.0, 4.0], [2.0, 2.0])  # pair ratios 0.5 and 2.0
    assert r.ratio == pytest.approx(1.0) and r.pairs == 2
    assert r.low < 0.5 and r.high > 2.0  # two pairs that disagree: a wide interval
    exact = paired_ratio([1.0, 2.0, 3.0], [2.0, 4.0, 6.0])
    assert (exact.ratio, exact.low, exact.high) == pytest.approx((0.5, 0.5, 0.5))
    assert exact.to_dict()["pairs"] == 3 and exact.halfwidth_rel == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("num", "den", "match"),
    [
        ([1.0], [1.0], "two pairs"),
        ([1.0, 2.0], [1.0], "as many"),
        ([1.0, -1.0], [1.0, 1.0], "positive"),
    ],
)
def test_paired_ratio_refuses_what_has_no_ratio(
    num: list[float], den: list[float], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        paired_ratio(num, den)
