from __future__ import annotations

import time

import pytest
import torch
from tests_support import lock_had_while_held
from torch import nn

from compresslab.energy import Availability, ComponentEnergy, Provenance, Reading
from compresslab.energy.estimate import EstimateSampler
from compresslab.errors import MeasurementError
from compresslab.protocol import (
    Protocol,
    ci95_halfwidth,
    host_lock,
    measure_callable,
    measure_model,
    t95,
)


class ScriptedSampler:
    """A sampler whose windows read the joules it is given, one value per window."""

    name = "scripted"
    provenance = Provenance.MEASURED
    scope = "process"  # no idle windows: every window reads the next scripted value

    def __init__(self, joules: list[float], period_s: float = 0.001) -> None:
        self._joules = iter(joules)
        self._period_s = period_s
        self.windows = 0

    def available(self) -> Availability:
        return Availability(True, "scripted")

    def update_period_s(self) -> float:
        return self._period_s

    def start(self) -> None:
        self._t0 = time.perf_counter()

    def stop(self) -> Reading:
        self.windows += 1
        return Reading(
            duration_s=time.perf_counter() - self._t0,
            components=(ComponentEnergy("cpu-package-0", next(self._joules), Provenance.MEASURED),),
        )

    def metadata(self) -> dict[str, str]:
        return {"covers": "a script"}


FAST = Protocol(warmup_s=0.0, window_s=0.01, min_windows=3, max_windows=6, target_ci_rel=0.05)


def test_t_quantiles() -> None:
    assert t95(1) == pytest.approx(12.706)
    assert t95(4) == pytest.approx(2.776)
    assert t95(1000) == pytest.approx(1.96)
    assert ci95_halfwidth([1.0, 1.0, 1.0]) == 0.0


class PerCallSampler(ScriptedSampler):
    """A perfect counter: every call of the workload costs exactly ``j_per_call`` joules."""

    def __init__(self, j_per_call: float) -> None:
        super().__init__([])
        self.calls = 0
        self.j_per_call = j_per_call

    def start(self) -> None:
        self._calls0 = self.calls
        super().start()

    def stop(self) -> Reading:
        j = (self.calls - self._calls0) * self.j_per_call
        self._joules = iter([j])
        return super().stop()


def test_stops_once_the_ci_is_tight() -> None:
    sampler = PerCallSampler(2.0)

    def work() -> None:
        sampler.calls += 1

    result = measure_callable(work, sampler=sampler, inferences_per_call=4, protocol=FAST)
    assert result.windows == 3  # CI half-width 0 after the minimum number of windows
    assert result.energy_j_per_inference == pytest.approx(0.5)  # 2 J per call of 4
    assert result.ci95_j_per_inference == pytest.approx(0.0, abs=1e-12)
    assert result.n_inferences == 4 * (sampler.calls - 1)  # one warm-up call
    assert result.provenance == Provenance.MEASURED
    assert result.component_provenance == {"cpu-package-0": "measured"}
    assert result.metadata["covers"] == "a script" and "omp_wait_policy" in result.metadata


def test_noisy_windows_repeat_up_to_the_maximum() -> None:
    sampler = ScriptedSampler([1.0, 3.0, 1.0, 3.0, 1.0, 3.0, 1.0])
    result = measure_callable(
        lambda: time.sleep(0.001), sampler=sampler, inferences_per_call=1, protocol=FAST
    )
    assert result.windows == 6
    assert result.std_j_per_inference > 0
    assert result.ci95_j_per_inference == pytest.approx(
        ci95_halfwidth(list(result.window_j_per_inference))
    )
    assert len(result.window_j_per_inference) == 6


class MachineFake(ScriptedSampler):
    """A machine-level counter: idle power times duration plus a fixed cost per call."""

    scope = "machine"

    def __init__(self, *, idle_w: float, j_per_call: float) -> None:
        super().__init__([])
        self.idle_w = idle_w
        self.j_per_call = j_per_call
        self.calls = 0

    def start(self) -> None:
        self._calls0 = self.calls
        super().start()

    def stop(self) -> Reading:
        duration = time.perf_counter() - self._t0
        j = self.idle_w * duration + (self.calls - self._calls0) * self.j_per_call
        self.windows += 1
        return Reading(
            duration_s=duration,
            components=(ComponentEnergy("cpu-package-0", j, Provenance.MEASURED),),
        )


@pytest.mark.slow
def test_idle_power_is_measured_and_subtracted() -> None:
    sampler = MachineFake(idle_w=50.0, j_per_call=0.01)

    def work() -> None:
        sampler.calls += 1
        time.sleep(0.001)

    protocol = Protocol(warmup_s=0.0, window_s=0.05, min_windows=3, max_windows=3, idle_s=0.05)
    result = measure_callable(work, sampler=sampler, inferences_per_call=2, protocol=protocol)
    assert result.idle_measured
    assert result.idle_power_w == pytest.approx(50.0)
    assert result.energy_j_per_inference == pytest.approx(0.005, rel=1e-6)  # net: 0.01 J / 2
    assert result.gross_j_per_inference > 0.005 * 3  # idle dominates the gross figure
    assert sampler.windows == 3 + 2  # two idle windows around the workload


@pytest.mark.slow
def test_workload_below_idle_noise_is_an_error() -> None:
    sampler = MachineFake(idle_w=50.0, j_per_call=0.0)

    def work() -> None:
        sampler.calls += 1
        time.sleep(0.001)

    protocol = Protocol(warmup_s=0.0, window_s=0.02, min_windows=2, max_windows=2, idle_s=0.02)
    with pytest.raises(MeasurementError, match="below resolution"):
        measure_callable(work, sampler=sampler, inferences_per_call=1, protocol=protocol)


@pytest.mark.slow
def test_window_lasts_ten_counter_periods() -> None:
    sampler = ScriptedSampler([1.0] * 6, period_s=0.02)
    result = measure_callable(lambda: None, sampler=sampler, inferences_per_call=1, protocol=FAST)
    assert result.duration_s >= result.windows * 0.2


def test_zero_reading_is_an_error_not_a_silent_zero() -> None:
    class Zero(ScriptedSampler):
        def stop(self) -> Reading:
            from compresslab.energy import check_reading

            return check_reading(super().stop(), sampler="zero")

    with pytest.raises(MeasurementError, match="0 J"):
        measure_callable(
            lambda: None, sampler=Zero([0.0] * 3), inferences_per_call=1, protocol=FAST
        )


def test_exception_in_workload_closes_the_window() -> None:
    sampler = ScriptedSampler([1.0] * 5)

    def boom() -> None:
        raise RuntimeError("kaput")

    with pytest.raises(RuntimeError, match="kaput"):
        measure_callable(boom, sampler=sampler, inferences_per_call=1, protocol=FAST)


def test_measure_model_with_the_estimator_is_labelled_estimated() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10))
    x = torch.randn(32, 64)
    result = measure_model(model, x, sampler=EstimateSampler(), protocol=FAST, threads=1)
    assert result.provenance == Provenance.ESTIMATED
    assert result.sampler == "estimate"
    assert result.energy_j_per_inference > 0
    assert result.kwh_per_1k == pytest.approx(result.energy_j_per_inference * 1000 / 3.6e6)
    assert set(result.components_j_per_inference) == {"cpu", "memory"}
    assert result.batch_size == 32
    d = result.to_dict()
    assert d["provenance"] == "estimated"
    assert d["window_j_per_inference"] == list(result.window_j_per_inference)
    assert d["ci95_j_per_inference"] == pytest.approx(ci95_halfwidth(d["window_j_per_inference"]))


class ThreadsSeen(nn.Module):
    """A small network that records the intra-op thread count each forward pass runs with."""

    def __init__(self, *, fail: bool = False) -> None:
        super().__init__()
        self.linear = nn.Linear(64, 10)
        self.fail = fail
        self.seen: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(torch.get_num_threads())
        if self.fail:
            raise RuntimeError("kaput")
        return self.linear(x)


@pytest.mark.slow
def test_measure_model_runs_with_the_requested_threads_and_restores_them() -> None:
    before = torch.get_num_threads()
    wanted = before + 1  # differs from the current setting, so a no-op cannot pass
    model = ThreadsSeen()
    result = measure_model(
        model, torch.randn(8, 64), sampler=EstimateSampler(), protocol=FAST, threads=wanted
    )
    assert result.windows >= FAST.min_windows
    assert model.seen and set(model.seen) == {wanted}
    assert torch.get_num_threads() == before

    failing = ThreadsSeen(fail=True)
    with pytest.raises(RuntimeError, match="kaput"):
        measure_model(
            failing, torch.randn(8, 64), sampler=EstimateSampler(), protocol=FAST, threads=wanted
        )
    assert failing.seen == [wanted]
    assert torch.get_num_threads() == before  # restored when the workload raises, too

    untouched = ThreadsSeen()
    measure_model(untouched, torch.randn(8, 64), sampler=EstimateSampler(), protocol=FAST)
    assert set(untouched.seen) == {before}  # threads=None leaves the setting alone


@pytest.mark.slow
def test_host_lock_excludes_other_processes() -> None:
    # Still waiting half a second on: the other process's measurement holds the lock.
    assert not lock_had_while_held(
        exclusive_other=True, exclusive_mine=True, within_s=0.5, lock=host_lock
    )


def test_latency_percentiles_throughput_and_memory_are_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from compresslab.protocol.windows import _quantile

    assert _quantile([3.0, 1.0, 2.0, 4.0], 0.5) == pytest.approx(2.5)
    assert _quantile([1.0] * 19 + [10.0], 0.95) == pytest.approx(1.45)
    sampler = ScriptedSampler([1.0] * 20)  # up to max_windows, whatever the CI
    # A simulated clock: each call takes 2 ms exactly, however loaded the machine is.
    now = [0.0]
    monkeypatch.setattr(time, "perf_counter", lambda: now[0])

    def work() -> None:
        now[0] += 0.002

    result = measure_callable(work, sampler=sampler, inferences_per_call=8, protocol=FAST)
    assert result.latency_p50_s_per_batch == pytest.approx(0.002)
    assert result.latency_p95_s_per_batch == pytest.approx(0.002)
    assert result.throughput_per_s == pytest.approx(8 / 0.002)
    assert result.peak_rss_bytes > 10_000_000  # this Python process with torch loaded
