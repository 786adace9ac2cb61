"""``compresslab.measure_block()``: a block's figure says whether it is gross, net or its own.

RAPL is a fake tree whose package counter is driven by the clock (``ClockCounter``): 20 W at
rest, more while the block "works", so the true figures are known.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

import pytest

import compresslab
from compresslab.energy import rapl_counter
from compresslab.energy.rapl_tree import ROOT_ENV
from compresslab.errors import MeasurementError
from compresslab.protocol.block import BLOCK_MIN_UPDATE_PERIODS

if TYPE_CHECKING:
    from conftest import ClockCounter, ClockCounters, PowercapTree


@pytest.fixture
def package(
    powercap: PowercapTree, clock_counters: ClockCounters, monkeypatch: pytest.MonkeyPatch
) -> ClockCounter:
    powercap.add_zone("intel-rapl:0", "package-0", max_power_uw=125_000_000)
    monkeypatch.setenv(ROOT_ENV, str(powercap.root))
    return clock_counters.attach(powercap, "intel-rapl:0", power_w=20.0, start_uj=10**9)


@pytest.mark.slow
def test_without_idle_the_figure_says_it_is_gross(package: ClockCounter) -> None:
    """Finding: `time.sleep(1)` in a block came back as energy per inference, `measured`,
    with nothing saying it was the machine's gross draw."""
    with compresslab.measure_block(sampler="rapl", inferences=10) as m:
        time.sleep(0.3)
    assert m.figure == "gross" and m.net is False and m.idle_measured is False
    assert m.idle_applies is True and m.idle_power_w is None
    assert m.energy_j == m.gross_energy_j
    assert m.energy_j / m.duration_s == pytest.approx(20.0, rel=0.03)
    d = m.to_dict()
    assert d["net"] is False and d["idle_measured"] is False and d["figure"] == "gross"
    assert "idle_s" in d["note"] and d["provenance"] == "measured"


@pytest.mark.slow
def test_with_idle_the_block_is_net_of_it(package: ClockCounter) -> None:
    with compresslab.measure_block(sampler="rapl", inferences=10, idle_s=0.3) as m:
        package.set_power(50.0)  # the block's work adds 30 W
        time.sleep(0.4)
        package.set_power(20.0)
    assert m.figure == "net" and m.net is True and m.idle_measured is True
    assert m.idle_power_w == pytest.approx(20.0, rel=0.03)
    assert m.gross_energy_j / m.duration_s == pytest.approx(50.0, rel=0.03)
    assert m.energy_j / m.duration_s == pytest.approx(30.0, rel=0.05)
    assert m.energy_j_per_inference == pytest.approx(m.energy_j / 10)
    d = m.to_dict()
    assert d["net"] is True and d["idle_s"] == 0.3 and "uncertainty" in d["note"]


@pytest.mark.slow
def test_a_block_that_adds_nothing_to_idle_is_an_error(package: ClockCounter) -> None:
    with (
        pytest.raises(MeasurementError, match="told apart from idle"),
        compresslab.measure_block(sampler="rapl", inferences=10, idle_s=0.3),
    ):
        time.sleep(0.3)


@pytest.fixture
def slow_package(
    powercap: PowercapTree, clock_counters: ClockCounters, monkeypatch: pytest.MonkeyPatch
) -> ClockCounter:
    """A package counter that changes every 50 ms (the issue's case; the probe's limit is 50 ms,
    raised a little so that the probe's timing jitter does not refuse it)."""
    monkeypatch.setattr(rapl_counter, "MAX_UPDATE_PERIOD_S", 0.06)
    powercap.add_zone("intel-rapl:0", "package-0", max_power_uw=125_000_000)
    monkeypatch.setenv(ROOT_ENV, str(powercap.root))
    return clock_counters.attach(
        powercap, "intel-rapl:0", power_w=20.0, start_uj=10**9, period_s=0.05
    )


@pytest.mark.slow
def test_a_block_shorter_than_the_minimum_is_refused(slow_package: ClockCounter) -> None:
    """Finding: 5 ms blocks on a 50 ms counter read 54-85 W for a true 20 W, `measured`."""
    assert BLOCK_MIN_UPDATE_PERIODS == 20
    with (
        pytest.raises(MeasurementError, match="ms minimum for the rapl sampler") as raised,
        compresslab.measure_block(sampler="rapl", inferences=10),
    ):
        time.sleep(0.005)
    message = str(raised.value)
    stated = re.search(r"under the ([0-9.]+) ms minimum .* ([0-9.]+) ms update period", message)
    assert stated is not None, message
    assert float(stated[1]) == pytest.approx(1000, rel=0.05)  # 20 x 50 ms
    assert float(stated[2]) == pytest.approx(50, rel=0.05) and "20 x" in message
    assert "more work inside the block" in message and "compresslab.measure(" in message


@pytest.mark.slow
def test_a_block_of_the_minimum_length_is_measured(slow_package: ClockCounter) -> None:
    with compresslab.measure_block(sampler="rapl", inferences=10) as m:
        time.sleep(1.1)
    assert m.provenance == "measured" and m.figure == "gross"
    assert m.min_duration_s == pytest.approx(1.0, rel=0.05)
    assert m.energy_j / m.duration_s == pytest.approx(20.0, rel=0.05)


def test_a_process_scoped_sampler_has_no_idle() -> None:
    with compresslab.measure_block(sampler="estimate", inferences=4, idle_s=0.2) as m:
        t0 = time.process_time()
        while time.process_time() - t0 < 0.05:
            sum(range(1000))
    assert m.figure == "process" and m.idle_applies is False
    assert m.idle_measured is False and m.net is False
    assert "no idle applies" in m.to_dict()["note"]


def test_bad_idle_is_refused() -> None:
    with pytest.raises(ValueError, match="idle_s"), compresslab.measure_block(idle_s=-1):
        pass
