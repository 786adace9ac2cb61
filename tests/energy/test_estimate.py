from __future__ import annotations

import time

import pytest

from compresslab.energy import Provenance, make_sampler
from compresslab.energy.estimate import (
    DEFAULT_WATTS_PER_CORE,
    DEFAULT_WATTS_PER_GB,
    EstimateSampler,
)
from compresslab.errors import MeasurementError


def _busy_cpu(min_cpu_s: float = 0.05) -> None:
    start_s = time.process_time()
    x = 0
    while time.process_time() - start_s < min_cpu_s:
        x += sum(range(1000))
    assert x > 0


def test_figures_are_labelled_estimated() -> None:
    sampler = EstimateSampler()
    assert sampler.provenance is Provenance.ESTIMATED
    sampler.start()
    _busy_cpu()
    reading = sampler.stop()
    assert {c.component for c in reading.components} == {"cpu", "memory"}
    assert all(c.provenance is Provenance.ESTIMATED for c in reading.components)
    assert reading.provenance is Provenance.ESTIMATED


def test_cpu_joules_are_cpu_seconds_times_watts_per_core() -> None:
    sampler = EstimateSampler(watts_per_core=5.0, watts_per_gb=0.5)
    sampler.start()
    _busy_cpu()
    reading = sampler.stop()
    cpu_s = reading.details["cpu_s"]
    assert cpu_s >= 0.05
    by_name = {c.component: c.energy_j for c in reading.components}
    assert by_name["cpu"] == pytest.approx(cpu_s * 5.0)
    expected_memory_j = reading.details["rss_gb"] * 0.5 * reading.duration_s
    assert by_name["memory"] == pytest.approx(expected_memory_j)
    assert reading.details["rss_gb"] > 0


def test_default_coefficients() -> None:
    sampler = EstimateSampler()
    sampler.start()
    _busy_cpu()
    reading = sampler.stop()
    cpu_j = next(c.energy_j for c in reading.components if c.component == "cpu")
    assert cpu_j == pytest.approx(reading.details["cpu_s"] * DEFAULT_WATTS_PER_CORE)
    meta = sampler.metadata()
    assert meta["coefficients_source"] == "documented default"
    assert meta["watts_per_core"] == f"{DEFAULT_WATTS_PER_CORE:g}"
    assert meta["watts_per_gb"] == f"{DEFAULT_WATTS_PER_GB:g}"


@pytest.mark.parametrize("options", [{"watts_per_core": 3.0}, {"watts_per_gb": 1.0}])
def test_recipe_coefficients_change_the_stated_source(options: dict[str, float]) -> None:
    meta = make_sampler("estimate", options).metadata()
    assert meta["coefficients_source"] == "recipe (energy.estimate)"
    key, value = next(iter(options.items()))
    assert meta[key] == f"{value:g}"


def test_window_without_cpu_time_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "process_time", lambda: 42.0)
    sampler = EstimateSampler()
    sampler.start()
    with pytest.raises(MeasurementError, match="no CPU time"):
        sampler.stop()


def test_stop_without_start() -> None:
    with pytest.raises(MeasurementError, match="before it was started"):
        EstimateSampler().stop()


def test_always_available_and_says_so() -> None:
    sampler = EstimateSampler()
    avail = sampler.available()
    assert avail
    assert "estimate" in avail.reason
    assert sampler.update_period_s() > 0
    assert "no GPU" in sampler.metadata()["covers"]
