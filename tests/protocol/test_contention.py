"""The contention policy: flag, wait or reject windows while others use the machine."""

from __future__ import annotations

import itertools

import pytest
from protocol_fakes import CostSampler, NoisyMachine, script_contention

from compresslab.errors import MeasurementError
from compresslab.protocol import Protocol, measure_callable


def _measure(sampler: CostSampler, protocol: Protocol):  # type: ignore[no-untyped-def]
    return measure_callable(
        sampler.workload("A", 1.0), sampler=sampler, inferences_per_call=1, protocol=protocol
    )


def test_flag_keeps_every_window_and_says_it_was_contended(monkeypatch: pytest.MonkeyPatch) -> None:
    script_contention(monkeypatch, itertools.cycle([0.1, 1.5, 0.1]))
    result = _measure(CostSampler(), Protocol(warmup_s=0, window_s=0.01, max_windows=3))
    c = result.contention
    assert result.contended and c.policy == "flag" and c.windows_rejected == 0
    assert c.foreign_cpus_max == pytest.approx(1.5) and result.windows == 3
    assert result.to_dict()["contention"]["contended"] is True


def test_a_quiet_machine_is_not_flagged(monkeypatch: pytest.MonkeyPatch) -> None:
    script_contention(monkeypatch, itertools.repeat(0.05))
    result = _measure(CostSampler(), Protocol(warmup_s=0, window_s=0.01, max_windows=3))
    assert not result.contended and result.contention.foreign_cpus_mean == pytest.approx(0.05)


def test_reject_drops_contended_windows_and_measures_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    script_contention(monkeypatch, iter([2.0, 0.1, 2.0, 0.1, 0.1] + [0.1] * 20))
    protocol = Protocol(
        warmup_s=0, window_s=0.01, min_windows=3, max_windows=3, contention="reject"
    )
    result = _measure(CostSampler(), protocol)
    assert result.windows == 3 and result.contention.windows_rejected == 2
    assert not result.contended  # every kept window was quiet


def test_reject_is_bounded_and_then_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    script_contention(monkeypatch, itertools.repeat(3.0))
    protocol = Protocol(
        warmup_s=0,
        window_s=0.01,
        min_windows=3,
        max_windows=3,
        contention="reject",
        max_rejected=2,
    )
    result = _measure(CostSampler(), protocol)
    assert result.contention.windows_rejected == 2 and result.contended


@pytest.mark.slow
def test_wait_sleeps_until_the_machine_is_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    # Two busy probes before the first window, then quiet.
    script_contention(monkeypatch, iter([2.0, 2.0] + [0.1] * 50))
    protocol = Protocol(warmup_s=0, window_s=0.01, min_windows=3, max_windows=3, contention="wait")
    result = _measure(CostSampler(), protocol)
    assert result.contention.waited_s == pytest.approx(0.5) and not result.contended


@pytest.mark.slow
def test_a_net_figure_whose_interval_reaches_zero_is_refused() -> None:
    # A device at constant power whose workload adds next to nothing: idle noise dominates.
    sampler = NoisyMachine(idle_w=50.0, j_per_call=1e-6, noise_rel=0.05)
    protocol = Protocol(warmup_s=0, window_s=0.02, min_windows=4, max_windows=4, idle_s=0.02)
    with pytest.raises(MeasurementError, match="below resolution.*window_s"):
        measure_callable(sampler.work, sampler=sampler, inferences_per_call=1, protocol=protocol)


@pytest.mark.slow
def test_a_workload_well_above_idle_noise_is_measured() -> None:
    sampler = NoisyMachine(idle_w=50.0, j_per_call=0.5, noise_rel=0.01)
    protocol = Protocol(warmup_s=0, window_s=0.02, min_windows=4, max_windows=4, idle_s=0.02)
    result = measure_callable(
        sampler.work, sampler=sampler, inferences_per_call=1, protocol=protocol
    )
    assert result.energy_j_per_inference == pytest.approx(0.5, rel=0.25)
    assert result.energy_j_per_inference - result.ci95_j_per_inference > 0
