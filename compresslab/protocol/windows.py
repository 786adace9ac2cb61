"""The windows of a measurement: threads, idle power, contention, resolution, results."""

from __future__ import annotations

import contextlib
import math
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from compresslab.energy import CounterFaultError, Provenance, Reading, Sampler
from compresslab.errors import MeasurementError
from compresslab.machine import logical_cpus, omp_wait_policy, rss_bytes
from compresslab.protocol import contention
from compresslab.protocol.types import CONTENTION_POLICIES, EnergyResult, Protocol, Workload
from compresslab.records import Contention
from compresslab.stats import ci95_halfwidth

#: How many times in a row a window whose counter faulted (a reset, a torn read, a late poll:
#: :class:`CounterFaultError`) is measured again before the measurement fails.
MAX_FAULT_RETRIES = 3


def effective_threads(threads: int | None) -> int:
    """The intra-op threads a measurement runs: never more than the CPUs this process has."""
    wanted = threads if threads is not None else torch.get_num_threads()
    return max(1, min(wanted, logical_cpus()))


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """Run with ``threads`` intra-op threads, capped at this process's CPUs; restored after.

    With ``None`` torch's setting stays, but is still capped: threads beyond the cores a
    process can have only wait for each other.
    """
    before = torch.get_num_threads()
    used = effective_threads(threads)
    if used != before:
        torch.set_num_threads(used)
    try:
        yield used
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


#: Per-call latencies kept for the percentiles (a bounded sample).
_MAX_LATENCIES = 20_000


@dataclass
class Series:
    """The windows of one workload, as they are measured."""

    gross: list[float] = field(default_factory=list)  # joules per inference
    durations: list[float] = field(default_factory=list)
    inferences: list[int] = field(default_factory=list)
    components: dict[str, list[float]] = field(default_factory=dict)
    provenance: dict[str, str] = field(default_factory=dict)
    contention: list[contention.Contention] = field(default_factory=list)
    busy_s: float = 0.0
    calls: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds per call
    peak_rss_bytes: int = 0

    def add(
        self, reading: Reading, latencies: list[float], elapsed: float, inferences_per_call: int
    ) -> None:
        """Record one window's reading, its calls' seconds and the window's seconds."""
        calls = len(latencies)
        n = calls * inferences_per_call
        self.gross.append(reading.energy_j / n)
        self.durations.append(reading.duration_s)
        self.inferences.append(n)
        for c in reading.components:
            self.components.setdefault(c.component, []).append(c.energy_j / n)
            self.provenance[c.component] = str(c.provenance)
        self.busy_s += elapsed
        self.calls += calls
        if len(self.latencies) < _MAX_LATENCIES:
            self.latencies.extend(latencies[: _MAX_LATENCIES - len(self.latencies)])
        self.peak_rss_bytes = max(self.peak_rss_bytes, rss_bytes())

    def net(self, idle_w: float) -> list[float]:
        """Net joules per inference of each window, with ``idle_w`` subtracted."""
        return [
            (g * n - idle_w * d) / n
            for g, n, d in zip(self.gross, self.inferences, self.durations, strict=True)
        ]

    def idle_term(self, idle_halfwidth_w: float) -> float:
        """How far the net mean can move with idle power, per inference."""
        if not self.durations:
            return 0.0
        return (
            idle_halfwidth_w * statistics.fmean(self.durations) / statistics.fmean(self.inferences)
        )


class Run:
    """One measurement's shared state: sampler, protocol, idle power, contention policy."""

    def __init__(self, sampler: Sampler, protocol: Protocol) -> None:
        if protocol.contention not in CONTENTION_POLICIES:
            raise ValueError(f"contention policy must be one of {CONTENTION_POLICIES}")
        self.sampler = sampler
        self.protocol = protocol
        self.period_s = counter_period_s(sampler)
        self.window_s = max(protocol.window_s, 10 * self.period_s)
        self.machine = getattr(sampler, "scope", "machine") == "machine"
        self.cpus = logical_cpus()
        self.idle_w: list[float] = []
        self.rejected = 0
        self.waited_s = 0.0
        self.faults: list[str] = []  # why windows were measured again

    def _retrying(self, measure: Callable[[], Any]) -> Any:
        """``measure()``, repeated when the sampler says its counter faulted (bounded).

        A faulted window's figure is wrong, not the workload's: it is dropped, its reason kept
        for the result's metadata, and the window measured again.
        """
        for attempt in range(MAX_FAULT_RETRIES + 1):
            try:
                return measure()
            except CounterFaultError as e:
                self.faults.append(e.reason)
                if attempt == MAX_FAULT_RETRIES:
                    raise MeasurementError(
                        f"{MAX_FAULT_RETRIES + 1} windows in a row were rejected because the "
                        f"energy counter faulted; the last: {e}. Check the counter with "
                        "`compresslab samplers`, or use `sampler: estimate`"
                    ) from e
        raise AssertionError("unreachable")

    # --- idle power -------------------------------------------------------------------------

    def measure_idle(self) -> None:
        """Read idle power once more (machine-level samplers with ``idle_s`` > 0 only)."""
        if self.machine and self.protocol.idle_s > 0:
            idle_s = max(self.protocol.idle_s, 10 * self.period_s)
            self.idle_w.append(self._retrying(lambda: idle_power_w(self.sampler, idle_s)))

    @property
    def idle(self) -> float:
        """Mean idle power in watts (0 for process-level samplers)."""
        return statistics.fmean(self.idle_w) if self.idle_w else 0.0

    @property
    def idle_halfwidth_w(self) -> float:
        """Half the spread of the idle readings before and after (0 with one or none)."""
        return (max(self.idle_w) - min(self.idle_w)) / 2 if len(self.idle_w) > 1 else 0.0

    # --- windows ----------------------------------------------------------------------------

    def contended(self, c: contention.Contention | None) -> bool:
        """Whether other processes kept more CPUs busy than the protocol allows."""
        return c is not None and c.foreign_cpus > self.protocol.max_foreign_cpus

    def wait_for_quiet(self) -> None:
        """With the ``wait`` policy: sleep while others keep the machine busy (bounded)."""
        if self.protocol.contention != "wait":
            return
        while self.waited_s < self.protocol.contention_wait_s:
            start = contention.snapshot()
            time.sleep(0.25)
            seen = contention.between(start, contention.snapshot(), cpus=self.cpus)
            if not self.contended(seen):
                return
            self.waited_s += 0.25

    def window(
        self, workload: Workload
    ) -> tuple[Reading, list[float], float, contention.Contention | None]:
        """One window: reading, each call's seconds, seconds, and what others used meanwhile."""
        bind = getattr(self.sampler, "bind", None)  # the modeled tier counts the model's calls
        if bind is not None and workload.model is not None:
            bind(workload.model, workload.inputs)
        with torch_threads(workload.threads):
            before = contention.snapshot()
            # A counter fault (RAPL reset, torn read, late poll) rejects this window only: it
            # is measured again, at most MAX_FAULT_RETRIES times, and the reason is recorded.
            reading, latencies, elapsed = self._retrying(
                lambda: _window(workload.fn, self.sampler, self.window_s)
            )
            seen = contention.between(before, contention.snapshot(), cpus=self.cpus)
        return reading, latencies, elapsed, seen

    def keep(self, seen: list[contention.Contention | None]) -> bool:
        """Whether windows measured under ``seen`` count (the ``reject`` policy drops them)."""
        if self.protocol.contention != "reject" or not any(self.contended(c) for c in seen):
            return True
        if self.rejected >= self.protocol.max_rejected:
            return True  # bounded: keep measuring, flagged
        self.rejected += 1
        return False

    def warm_up(self, workload: Workload) -> None:
        """Run the workload for ``warmup_s`` (at least once) at its thread setting."""
        with torch_threads(workload.threads):
            t_end = time.perf_counter() + self.protocol.warmup_s
            workload.fn()
            while time.perf_counter() < t_end:
                workload.fn()

    # --- results ----------------------------------------------------------------------------

    def fault_metadata(self) -> dict[str, str]:
        """Windows measured again because the counter faulted, and why (empty when none)."""
        if not self.faults:
            return {}
        return {"windows_repeated": str(len(self.faults)), "window_faults": "; ".join(self.faults)}

    def summary(self, series: Series) -> Contention:
        """The contention seen over a series of windows, and what the policy did about it."""
        seen = series.contention
        foreign = [c.foreign_cpus for c in seen]
        return Contention(
            policy=self.protocol.contention,
            max_foreign_cpus=self.protocol.max_foreign_cpus,
            foreign_cpus_mean=statistics.fmean(foreign) if foreign else None,
            foreign_cpus_max=max(foreign) if foreign else None,
            steal_frac_mean=statistics.fmean(c.steal_frac for c in seen) if seen else None,
            load_1m_max=max(c.load_1m for c in seen) if seen else None,
            windows_rejected=self.rejected,
            waited_s=round(self.waited_s, 3),
            contended=any(self.contended(c) for c in seen),
            observed=bool(seen),
        )

    def result(self, series: Series, workload: Workload, threads: int) -> EnergyResult:
        """The :class:`EnergyResult` of a series (raises when it is below resolution)."""
        per_inf = series.net(self.idle)
        mean = statistics.fmean(per_inf)
        gross_mean = statistics.fmean(series.gross)
        ci = math.hypot(ci95_halfwidth(per_inf), series.idle_term(self.idle_halfwidth_w))
        check_resolution(mean, ci, gross_mean=gross_mean, idle_w=self.idle, run=self)
        provenance = max((Provenance(p) for p in series.provenance.values()), key=lambda p: p.rank)
        return EnergyResult(
            sampler=self.sampler.name,
            provenance=provenance,
            energy_j_per_inference=mean,
            std_j_per_inference=statistics.stdev(per_inf),
            ci95_j_per_inference=ci,
            windows=len(per_inf),
            n_inferences=sum(series.inferences),
            batch_size=workload.inferences_per_call,
            latency_s_per_batch=series.busy_s / series.calls,
            latency_p50_s_per_batch=_quantile(series.latencies, 0.50),
            latency_p95_s_per_batch=_quantile(series.latencies, 0.95),
            throughput_per_s=sum(series.inferences) / series.busy_s,
            peak_rss_bytes=series.peak_rss_bytes,
            duration_s=series.busy_s,
            window_j_per_inference=tuple(per_inf),
            components_j_per_inference={
                k: statistics.fmean(v) for k, v in series.components.items()
            },
            component_provenance=dict(series.provenance),
            gross_j_per_inference=gross_mean,
            idle_power_w=self.idle,
            idle_measured=bool(self.idle_w),
            update_period_s=self.period_s,
            window_s=self.window_s,
            metadata={
                **self.sampler.metadata(),
                "omp_wait_policy": omp_wait_policy(),
                **self.fault_metadata(),
            },
            ci_target_met=ci <= self.protocol.target_ci_rel * mean,
            systematic_rel=getattr(self.sampler, "systematic_rel", None),
            threads=threads,
            contention=self.summary(series),
        )


def check_resolution(mean: float, ci: float, *, gross_mean: float, idle_w: float, run: Run) -> None:
    """Refuse a net figure that cannot be told apart from idle (never a point value).

    Only figures with idle power subtracted can fall below resolution; a process-scoped
    figure (nothing subtracted) only has to be positive, however wide its interval.

    Raises:
        MeasurementError: the mean is not positive, or, net of idle, its 95% interval
            reaches zero.
    """
    subtracted = bool(run.idle_w)
    if math.isfinite(mean) and mean > 0 and (not subtracted or mean - ci > 0):
        return
    raise MeasurementError(
        f"below resolution: the workload adds {mean:.3g} ± {ci:.2g} J per inference net "
        f"({gross_mean:.3g} J gross, idle {idle_w:.3g} W), an interval that reaches zero: it "
        f"cannot be told apart from the machine's idle power. Lengthen `energy.window_s` "
        f"(now {run.window_s:g} s) or raise `energy.max_windows`, raise `energy.batch_size`, "
        "or quiet the machine"
    )


def _quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile (linear interpolation); nan for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _window(
    fn: Callable[[], object], sampler: Sampler, min_s: float
) -> tuple[Reading, list[float], float]:
    """One window: the reading, each call's seconds, and the window's seconds."""
    latencies: list[float] = []
    sampler.start()
    t0 = last = time.perf_counter()
    try:
        while True:
            fn()
            now = time.perf_counter()
            latencies.append(now - last)
            last = now
            elapsed = now - t0
            if elapsed >= min_s:
                break
    except BaseException:
        with contextlib.suppress(Exception):
            sampler.stop()
        raise
    reading = sampler.stop()
    return reading, latencies, elapsed


def counter_period_s(sampler: Sampler) -> float:
    """The sampler's probed update period where it can probe, else its nominal one."""
    nominal = sampler.update_period_s()
    probe = getattr(sampler, "probe_update_period_s", None)
    if probe is None:
        return nominal
    probed = probe()
    if probed is None:
        return nominal
    # A probe on a busy machine can see a late update; never go below the nominal period.
    return max(nominal, float(probed))


def idle_power_w(sampler: Sampler, idle_s: float) -> float:
    """Mean power of the machine at rest over ``idle_s`` (the process sleeps)."""
    sampler.start()
    time.sleep(idle_s)
    reading = sampler.stop()
    return reading.energy_j / reading.duration_s
