"""RAPL counters that misbehave: resets, torn reads, fast wraps, frozen or slow counters, psys.

Each case runs on a fake powercap tree whose counters are driven by the clock
(:class:`conftest.ClockCounter`), so a window's true energy is known: power x duration. Each
gives the true figure within 2% or a clear error; none gives a wrong figure without one.
These are the findings of issue #15, each reproduced first.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from compresslab.energy import describe_samplers, rapl_counter, rapl_tree
from compresslab.energy.base import CounterFaultError
from compresslab.energy.rapl import RaplSampler
from compresslab.errors import BackendUnavailableError, MeasurementError, RecipeError
from compresslab.protocol import Protocol, measure_callable
from compresslab.recipe import EnergySpec

if TYPE_CHECKING:
    from conftest import ClockCounters, PowercapTree, SimulatedClock

TYPICAL = 262_143_328_850


def _power_w(reading) -> float:
    return reading.energy_j / reading.duration_s


def _window(sampler: RaplSampler, seconds: float):
    sampler.start()
    time.sleep(seconds)
    return sampler.stop()


def _window_retrying_late_polls(sampler: RaplSampler, seconds: float, tries: int = 4):
    """A window; one in which the poll thread was starved is measured again (as the protocol
    does), since a loaded test machine can starve it for a few milliseconds."""
    for attempt in range(tries):
        try:
            return _window(sampler, seconds)
        except CounterFaultError as e:
            if "late" not in e.reason or attempt == tries - 1:
                raise
    raise AssertionError("unreachable")


# --- resets and torn reads ----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("range_uj", "start_uj"),
    [
        (TYPICAL, 5_000_000_000),  # the usual 262 kJ range, reset from 5 kJ to 0
        (40_000_000, 10_000_000),  # a 40 J range: the reset is a plausible-looking "wrap"
    ],
)
def test_a_reset_is_rejected_never_counted_as_a_wrap(
    powercap: PowercapTree, clock_counters: ClockCounters, range_uj: int, start_uj: int
) -> None:
    """Finding: a reset was counted as a wrap (a counter reset every 2 s read +50 to +96%)."""
    powercap.add_zone(
        "intel-rapl:0", "package-0", max_energy_range_uj=range_uj, max_power_uw=60_000_000
    )
    clock_counters.attach(
        powercap, "intel-rapl:0", power_w=30.0, start_uj=start_uj, resets_at_s=(0.15,)
    )
    sampler = RaplSampler(root=powercap.root)
    assert sampler.available(), sampler.available().reason
    sampler.start()
    time.sleep(0.3)
    with pytest.raises(CounterFaultError, match="reset") as info:
        sampler.stop()
    assert "120 W" in str(info.value)  # 2 x the zone's 60 W constraint
    assert "counter reset" in info.value.reason
    assert isinstance(info.value, MeasurementError)
    # After the reset the counter runs normally: the next window is right.
    assert _power_w(_window_retrying_late_polls(sampler, 0.2)) == pytest.approx(30.0, rel=0.02)


@pytest.mark.slow
@pytest.mark.parametrize("torn", ["short", "long"])
def test_a_torn_read_is_rejected(
    powercap: PowercapTree, clock_counters: ClockCounters, torn: str
) -> None:
    """A read that lost or gained a digit implies kilowatts: rejected, not wrapped or added."""
    powercap.add_zone("intel-rapl:0", "package-0", max_power_uw=100_000_000)
    counter = clock_counters.attach(
        powercap, "intel-rapl:0", power_w=25.0, start_uj=123_456_789_012
    )
    sampler = RaplSampler(root=powercap.root, poll_interval_s=0.02)
    assert sampler.available()
    counter.torn_at_s = {time.perf_counter() - counter.t0 + 0.1: torn}
    sampler.start()
    time.sleep(0.25)
    with pytest.raises(CounterFaultError, match="reset or a read was torn") as info:
        sampler.stop()
    assert "torn" in info.value.reason or "reset" in info.value.reason


@pytest.mark.slow
def test_the_protocol_repeats_a_faulted_window_and_says_so(
    powercap: PowercapTree, clock_counters: ClockCounters
) -> None:
    powercap.add_zone("intel-rapl:0", "package-0", max_power_uw=60_000_000)
    clock_counters.attach(
        powercap, "intel-rapl:0", power_w=30.0, start_uj=5_000_000_000, resets_at_s=(0.45,)
    )
    sampler = RaplSampler(root=powercap.root)
    protocol = Protocol(warmup_s=0.0, window_s=0.2, min_windows=3, max_windows=3, idle_s=0.0)
    result = measure_callable(
        lambda: time.sleep(0.01), sampler=sampler, inferences_per_call=1, protocol=protocol
    )
    assert result.windows == 3
    assert result.metadata["windows_repeated"] == "1"
    assert "counter reset" in result.metadata["window_faults"]
    watts = result.energy_j_per_inference * result.n_inferences / result.duration_s
    assert watts == pytest.approx(30.0, rel=0.02)


@pytest.mark.slow
def test_a_counter_that_keeps_resetting_is_a_clear_error(
    powercap: PowercapTree, clock_counters: ClockCounters
) -> None:
    powercap.add_zone("intel-rapl:0", "package-0", max_power_uw=60_000_000)
    clock_counters.attach(
        powercap,
        "intel-rapl:0",
        power_w=30.0,
        start_uj=5_000_000_000,
        # Every 0.15 s: more than a poll interval (0.1 s) apart, so every one is seen.
        resets_at_s=tuple(0.1 + 0.15 * k for k in range(100)),
    )
    protocol = Protocol(warmup_s=0.0, window_s=0.2, min_windows=2, max_windows=2, idle_s=0.0)
    with pytest.raises(MeasurementError, match="4 windows in a row were rejected") as info:
        measure_callable(
            lambda: time.sleep(0.01),
            sampler=RaplSampler(root=powercap.root),
            inferences_per_call=1,
            protocol=protocol,
        )
    assert not isinstance(info.value, CounterFaultError)  # not retryable any more
    assert "compresslab samplers" in str(info.value)


# --- wraps faster than a fixed poll could see ---------------------------------------------------


def _polled_by_hand(
    zones: tuple[rapl_tree.Zone, ...], clock: SimulatedClock, *, every_s: float, for_s: float
) -> rapl_counter.Accumulator:
    """Poll ``zones`` every ``every_s`` simulated seconds for ``for_s`` (exact under any load)."""
    acc = rapl_counter.Accumulator(zones, update_period_s=0.001)
    for _ in range(round(for_s / every_s)):
        clock.advance(every_s)
        acc.poll()
    return acc


def test_fast_wraps_are_all_counted(
    powercap: PowercapTree, clock_counters: ClockCounters, simulated_clock: SimulatedClock
) -> None:
    """Finding: 10 ms polls missed the wraps of a small-range counter (-79%, no warning).

    0.5 J at 80 W wraps every 6 ms; the zone may draw 120 W (2 x 60 W), so a wrap can come
    every 4.2 ms: the poll interval must be at most a quarter of that, and is.
    """
    powercap.add_zone(
        "intel-rapl:0", "package-0", max_energy_range_uj=500_000, max_power_uw=60_000_000
    )
    clock_counters.attach(
        powercap, "intel-rapl:0", power_w=80.0, start_uj=100_000, clock=simulated_clock
    )
    sampler = RaplSampler(root=powercap.root)
    # (available() would probe the counter, which does not move on a simulated clock.)
    assert rapl_counter.poll_problem(sampler._discover().zones, None) is None
    interval_s = sampler.effective_poll_interval_s()
    assert interval_s <= 0.5 / 120 / 4
    acc = _polled_by_hand(sampler._zones, simulated_clock, every_s=interval_s, for_s=0.3)
    assert acc.total_uj[0] / 1e6 / 0.3 == pytest.approx(80.0, rel=0.02)
    assert acc.wraps >= 40
    # Polled every 10 ms (the old fixed interval), the same counter is refused, not under-counted.
    with pytest.raises(CounterFaultError, match="could have passed unseen"):
        _polled_by_hand(sampler._zones, simulated_clock, every_s=0.01, for_s=0.3)


@pytest.mark.slow
def test_fast_wraps_through_the_poll_thread(
    powercap: PowercapTree, clock_counters: ClockCounters
) -> None:
    """The same through the sampler's own thread, with a range wide enough for a loaded CI host."""
    powercap.add_zone("intel-rapl:0", "package-0", max_energy_range_uj=50_000_000)
    clock_counters.attach(powercap, "intel-rapl:0", power_w=400.0, start_uj=45_000_000)
    sampler = RaplSampler(root=powercap.root)
    reading = _window_retrying_late_polls(sampler, 0.5)
    assert _power_w(reading) == pytest.approx(400.0, rel=0.02)
    assert reading.details["wraps"] >= 3


def test_a_counter_that_wraps_too_fast_to_poll_is_refused(
    powercap: PowercapTree, clock_counters: ClockCounters
) -> None:
    """0.15 J at up to 120 W wraps every 1.25 ms: no thread polls every 0.3 ms; refused."""
    powercap.add_zone(
        "intel-rapl:0", "package-0", max_energy_range_uj=150_000, max_power_uw=60_000_000
    )
    clock_counters.attach(powercap, "intel-rapl:0", power_w=80.0)
    sampler = RaplSampler(root=powercap.root)
    avail = sampler.available()
    assert not avail
    assert "faster than a poll thread sustains" in avail.reason
    assert "energy.rapl.max_power_w" in avail.reason
    with pytest.raises(BackendUnavailableError, match="wraps after 0.15 J"):
        sampler.start()


def test_a_poll_interval_that_could_miss_wraps_is_refused(powercap: PowercapTree) -> None:
    powercap.add_zone("intel-rapl:0", "package-0", max_energy_range_uj=20_000_000)
    avail = RaplSampler(root=powercap.root, poll_interval_s=0.5).available()
    assert not avail
    assert "energy.rapl.poll_interval_s" in avail.reason and "could miss wraps" in avail.reason


def test_a_late_poll_is_rejected_rather_than_missing_a_wrap(
    powercap: PowercapTree, clock_counters: ClockCounters, simulated_clock: SimulatedClock
) -> None:
    powercap.add_zone(
        "intel-rapl:0", "package-0", max_energy_range_uj=2_000_000, max_power_uw=50_000_000
    )
    clock_counters.attach(powercap, "intel-rapl:0", power_w=50.0, clock=simulated_clock)
    zones = rapl_tree.discover(powercap.root, ("package",)).zones
    acc = rapl_counter.Accumulator(zones, update_period_s=0.001)
    simulated_clock.advance(0.005)
    acc.poll()  # 5 ms: no wrap possible at up to 100 W in 2 J
    simulated_clock.advance(0.03)
    acc.poll()  # 1.5 J at 50 W: a hidden wrap would need 3.5 J in 30 ms, 113 W: impossible
    simulated_clock.advance(0.06)  # a starved poll thread: 3 J at 50 W; it could have wrapped twice
    with pytest.raises(CounterFaultError, match="could have passed unseen") as info:
        acc.poll()
    assert "late" in info.value.reason
    assert acc.total_uj == [pytest.approx(1_750_000, abs=60_000)]  # the late step is not added


# --- frozen and slow counters -------------------------------------------------------------------


def test_a_frozen_counter_is_unavailable_and_listed_so(
    powercap: PowercapTree, clock_counters: ClockCounters, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding: a frozen counter was blamed on a short window and listed as available."""
    powercap.add_zone("intel-rapl:0", "package-0")
    clock_counters.attach(powercap, "intel-rapl:0", power_w=20.0, frozen=True)
    sampler = RaplSampler(root=powercap.root)
    avail = sampler.available()
    assert not avail
    assert "frozen" in avail.reason and "did not change" in avail.reason
    with pytest.raises(BackendUnavailableError, match="frozen"):
        sampler.start()
    monkeypatch.setenv(rapl_tree.ROOT_ENV, str(powercap.root))
    rows = {name: avail for name, _, avail in describe_samplers()}
    assert not rows["rapl"] and "frozen" in rows["rapl"].reason


@pytest.mark.slow
def test_a_counter_that_freezes_mid_run_is_reported_frozen(
    powercap: PowercapTree, clock_counters: ClockCounters
) -> None:
    powercap.add_zone("intel-rapl:0", "package-0")
    counter = clock_counters.attach(powercap, "intel-rapl:0", power_w=20.0)
    sampler = RaplSampler(root=powercap.root)
    assert sampler.available()
    counter.frozen = True
    sampler.start()
    time.sleep(0.5)
    with pytest.raises(MeasurementError, match="froze") as info:
        sampler.stop()
    assert "window_s" not in str(info.value)  # not blamed on the window's length


def test_a_counter_that_updates_once_in_a_while_is_refused(
    powercap: PowercapTree, clock_counters: ClockCounters
) -> None:
    """Finding: a counter updating once a second read -99% in its first window."""
    powercap.add_zone("intel-rapl:0", "package-0")
    clock_counters.attach(powercap, "intel-rapl:0", power_w=20.0, period_s=0.2)
    avail = RaplSampler(root=powercap.root).available()
    assert not avail
    assert "not about every 1 ms" in avail.reason and "emulated or throttled" in avail.reason


def test_a_healthy_counter_probes_its_update_period(
    powercap: PowercapTree, clock_counters: ClockCounters
) -> None:
    powercap.add_zone("intel-rapl:0", "package-0")
    clock_counters.attach(powercap, "intel-rapl:0", power_w=20.0, period_s=0.002)
    sampler = RaplSampler(root=powercap.root)
    assert sampler.available()
    period_s = sampler.probe_update_period_s()
    # Never shorter than the real period; longer when the probe loop is descheduled.
    assert period_s is not None and 0.0015 <= period_s < rapl_counter.MAX_UPDATE_PERIOD_S


def test_a_static_tree_is_frozen_to_the_real_probe(powercap: PowercapTree) -> None:
    powercap.static_counters_live = False
    powercap.add_zone("intel-rapl:0", "package-0")
    rapl_counter_frozen_after = 0.05
    probe = rapl_counter.probe_counters(
        rapl_tree.discover(powercap.root, ("package",)).zones,
        frozen_after_s=rapl_counter_frozen_after,
    )
    assert not probe.ok and "frozen" in probe.problems[0]


# --- psys and several packages ------------------------------------------------------------------


@pytest.mark.slow
def test_psys_alone_gives_the_platform_figure(
    powercap: PowercapTree, clock_counters: ClockCounters
) -> None:
    """Finding: psys could only be added on top of the package it contains (51 W for 31 W)."""
    powercap.add_zone("intel-rapl:0", "package-0")
    powercap.add_zone("intel-rapl:1", "psys")
    clock_counters.attach(powercap, "intel-rapl:0", power_w=20.0)
    clock_counters.attach(powercap, "intel-rapl:1", power_w=31.0)
    sampler = RaplSampler(root=powercap.root, domains=["psys"])
    reading = _window_retrying_late_polls(sampler, 0.3)
    assert [c.component for c in reading.components] == ["psys"]
    assert _power_w(reading) == pytest.approx(31.0, rel=0.02)


@pytest.mark.parametrize("domains", [["package", "psys"], ["psys", "dram"]])
def test_a_recipe_with_psys_and_the_package_is_refused(domains: list[str]) -> None:
    with pytest.raises(ValueError, match="covers the whole SoC"):
        EnergySpec.model_validate({"rapl": {"domains": domains}})
    with pytest.raises(RecipeError, match="count them twice"):
        RaplSampler(root=Path("/nonexistent"), domains=domains)
    assert EnergySpec.model_validate({"rapl": {"domains": ["psys"]}}).rapl.domains == ["psys"]


@pytest.mark.slow
def test_two_packages_and_their_dram_are_each_counted(
    powercap: PowercapTree, clock_counters: ClockCounters
) -> None:
    powercap.add_zone("intel-rapl:0", "package-0", max_power_uw=150_000_000)
    powercap.add_zone("intel-rapl:1", "package-1", max_power_uw=150_000_000)
    powercap.add_zone("intel-rapl:0:0", "dram")
    powercap.add_zone("intel-rapl:1:0", "dram")
    watts = {
        "intel-rapl:0": 30.0,
        "intel-rapl:1": 20.0,
        "intel-rapl:0:0": 4.0,
        "intel-rapl:1:0": 6.0,
    }
    for zone, power_w in watts.items():
        clock_counters.attach(powercap, zone, power_w=power_w, start_uj=1_000_000_000)
    sampler = RaplSampler(root=powercap.root, domains=["package", "dram"])
    reading = _window_retrying_late_polls(sampler, 0.3)
    per_s = {c.component: c.energy_j / reading.duration_s for c in reading.components}
    assert per_s == {
        "cpu-package-0": pytest.approx(30.0, rel=0.02),
        "cpu-package-1": pytest.approx(20.0, rel=0.02),
        "dram-0": pytest.approx(4.0, rel=0.02),
        "dram-1": pytest.approx(6.0, rel=0.02),
    }
    assert _power_w(reading) == pytest.approx(60.0, rel=0.02)


# --- maximum power ------------------------------------------------------------------------------


def test_maximum_power_comes_from_the_constraints_or_the_ceiling(powercap: PowercapTree) -> None:
    with_limit = powercap.add_zone("intel-rapl:0", "package-0", max_power_uw=95_000_000)
    (with_limit / "constraint_1_max_power_uw").write_text("120000000\n")
    (with_limit / "constraint_2_max_power_uw").write_text("0\n")  # 0: not stated
    without = powercap.add_zone("intel-rapl:1", "package-1")
    power_w, source = rapl_tree.zone_max_power(with_limit)
    assert power_w == pytest.approx(240.0) and "120 W" in source
    assert rapl_tree.zone_max_power(without)[0] == rapl_tree.CEILING_W
    assert rapl_tree.zone_max_power(without, override_w=75.0) == (75.0, "energy.rapl.max_power_w")
    meta = RaplSampler(root=powercap.root).metadata()
    assert "cpu-package-0=240 W" in meta["max_power_w"]
    assert "reset or torn read" in meta["faults"]


# --- resets near the top of a small range (issue #29) -------------------------------------------


def _small_range_zones(
    powercap: PowercapTree, clock_counters: ClockCounters, clock: SimulatedClock, **kwargs
) -> tuple[tuple[rapl_tree.Zone, ...], float]:
    """A 20 J counter with no constraint file (1000 W ceiling: a wrap can come every 20 ms)."""
    powercap.add_zone("intel-rapl:0", "package-0", max_energy_range_uj=20_000_000)
    clock_counters.attach(powercap, "intel-rapl:0", power_w=30.0, clock=clock, **kwargs)
    sampler = RaplSampler(root=powercap.root)
    zones = sampler._discover().zones
    return zones, sampler.effective_poll_interval_s()


def test_a_reset_near_the_top_of_a_small_range_is_not_counted_as_a_wrap(
    powercap: PowercapTree, clock_counters: ClockCounters, simulated_clock: SimulatedClock
) -> None:
    """Finding: a reset at 19 J of a 20 J range was taken for a wrap and read +11%, `measured`.

    At up to 1000 W a wrap fits in the 3.25 ms the gap allows, so the maximum power alone cannot
    tell; the zone's observed 30 W can: 1 J to the top in one 1.25 ms poll would be 800 W.
    """
    zones, interval_s = _small_range_zones(
        powercap, clock_counters, simulated_clock, start_uj=10_000_000, resets_at_s=(0.3,)
    )
    assert interval_s == pytest.approx(0.00125)
    with pytest.raises(CounterFaultError, match="cannot tell a reset from a wrap") as info:
        _polled_by_hand(zones, simulated_clock, every_s=interval_s, for_s=0.5)
    assert "reset" in info.value.reason
    assert "energy.rapl.max_power_w" not in str(info.value)


def test_a_real_wrap_of_a_small_range_is_still_counted(
    powercap: PowercapTree, clock_counters: ClockCounters, simulated_clock: SimulatedClock
) -> None:
    zones, interval_s = _small_range_zones(
        powercap, clock_counters, simulated_clock, start_uj=10_000_000
    )
    acc = _polled_by_hand(zones, simulated_clock, every_s=interval_s, for_s=0.6)
    assert acc.wraps == 1
    assert acc.total_uj[0] / 1e6 == pytest.approx(18.0, rel=0.01)


def test_a_reset_just_below_the_top_is_counted_within_its_stated_bound(
    powercap: PowercapTree, clock_counters: ClockCounters, simulated_clock: SimulatedClock
) -> None:
    """A reset in the residual blind zone is an error of at most 2 x observed power x (gap + 2T)."""
    zones, interval_s = _small_range_zones(
        powercap, clock_counters, simulated_clock, start_uj=18_000_000, resets_at_s=(0.0661,)
    )
    # Read last at 19.95 J (t = 65 ms), reset at 19.98 J: 0.05 J to the top at 30 W is plausible.
    acc = rapl_counter.Accumulator(zones, update_period_s=0.001)
    for _ in range(400):
        simulated_clock.advance(interval_s)
        acc.poll()
    bound_j = rapl_counter.WRAP_POWER_SWING * 30.0 * (interval_s + 2 * 0.001)
    assert acc.wraps == 1
    # The true energy is 30 W x 0.5 s; one update period (0.03 J) of quantization on top.
    assert abs(acc.total_uj[0] / 1e6 - 30.0 * 400 * interval_s) <= bound_j + 0.03


def test_a_constraint_below_the_real_draw_points_to_max_power_w(
    powercap: PowercapTree, clock_counters: ClockCounters, simulated_clock: SimulatedClock
) -> None:
    """Finding: a zone drawing more than 2 x its constraint was blamed on a reset or torn read."""
    powercap.add_zone("intel-rapl:0", "package-0", max_power_uw=10_000_000)  # bound: 20 W
    clock_counters.attach(powercap, "intel-rapl:0", power_w=45.0, clock=simulated_clock)
    zones = rapl_tree.discover(powercap.root, ("package",)).zones
    with pytest.raises(CounterFaultError, match="energy.rapl.max_power_w") as info:
        _polled_by_hand(zones, simulated_clock, every_s=0.01, for_s=0.05)
    assert "reset or a read was torn" not in str(info.value)
    assert "constraint_0_max_power_uw" in str(info.value) or "20 W" in str(info.value)


def test_a_missing_max_energy_range_names_that_file(powercap: PowercapTree) -> None:
    path = powercap.add_zone("intel-rapl:0", "package-0")
    (path / "max_energy_range_uj").unlink()
    avail = RaplSampler(root=powercap.root).available()
    assert not avail
    assert "max_energy_range_uj" in avail.reason
    assert f"cannot read {path / 'energy_uj'}" not in avail.reason
