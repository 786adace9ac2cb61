"""The measurement protocol: warm-up, timed windows, repetitions until the CI is tight.

For one workload (a model on a fixed batch, or any callable):

1. **Counter period**: a sampler that can (RAPL) probes how often its counter really updates;
   otherwise its nominal period is used.
2. **Idle power** (machine-level samplers only): the sampler reads ``idle_s`` of the machine
   at rest before the workload and again after it; their mean is the idle power.
3. **Warm-up** for ``warmup_s`` (at least one call): caches, allocators and lazy kernels settle.
4. **Windows**: each opens the sampler, runs the workload back to back for at least
   ``window_s`` (and at least 10 of the counter's update periods, so a window is never
   shorter than the counter can resolve), then closes the sampler. Gross energy per inference
   of the window = its joules / inferences run in it; net = (joules - idle power x window
   duration) / inferences. Net is the primary figure: what the workload adds to the machine.
   Process-scoped samplers (estimate, model) have no idle to subtract: net equals gross.
5. **Repetition**: windows repeat until the 95% confidence half-width of the mean energy per
   inference is within ``target_ci_rel`` of the mean (after ``min_windows``), or ``max_windows``
   is reached. Mean, standard deviation, CI and the number of windows are all reported.
6. **Isolation**: on one host, no two measurements overlap (an inter-process file lock),
   since machine-level counters would count each other's work.

An implausible reading (negative, zero, not finite) raises
:class:`~compresslab.errors.MeasurementError`; it is never replaced by a guess.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from compresslab import units
from compresslab.energy import Provenance, Reading, Sampler, Selection, select_sampler
from compresslab.errors import MeasurementError
from compresslab.recipe import EnergySpec

log = logging.getLogger(__name__)

# Two-sided 95% Student t quantiles by degrees of freedom (1..30); 1.96 beyond.
_T95 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t95(dof: int) -> float:
    """Two-sided 95% Student t quantile for ``dof`` degrees of freedom."""
    if dof < 1:
        raise ValueError("a confidence interval needs at least two windows")
    return _T95[dof - 1] if dof <= len(_T95) else 1.96


def ci95_halfwidth(values: list[float]) -> float:
    """Half-width of the 95% confidence interval of the mean of ``values``."""
    if len(values) < 2:
        return math.inf
    return t95(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))


@dataclass(frozen=True)
class EnergyResult:
    """Energy per inference of one workload, with how it was obtained and how certain it is."""

    sampler: str
    provenance: Provenance
    energy_j_per_inference: float
    std_j_per_inference: float
    ci95_j_per_inference: float
    windows: int
    n_inferences: int
    batch_size: int
    latency_s_per_batch: float
    duration_s: float
    window_j_per_inference: tuple[float, ...]
    components_j_per_inference: dict[str, float]
    component_provenance: dict[str, str]
    gross_j_per_inference: float
    idle_power_w: float
    idle_measured: bool
    update_period_s: float
    window_s: float
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def kwh_per_1k(self) -> float:
        """Kilowatt-hours per 1000 inferences."""
        return units.kwh_per_1k(self.energy_j_per_inference)

    @property
    def ci95_rel(self) -> float:
        """CI half-width relative to the mean."""
        return self.ci95_j_per_inference / self.energy_j_per_inference

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (the ``--json`` output and trial attributes)."""
        d = asdict(self)
        d["provenance"] = str(self.provenance)
        d["window_j_per_inference"] = list(self.window_j_per_inference)
        d["kwh_per_1k"] = self.kwh_per_1k
        return d


@dataclass(frozen=True)
class Protocol:
    """Settings of the protocol (see the module docstring); built from a recipe's ``energy``."""

    warmup_s: float = 0.5
    window_s: float = 1.0
    min_windows: int = 3
    max_windows: int = 8
    target_ci_rel: float = 0.05
    idle_s: float = 1.0

    @classmethod
    def from_spec(cls, spec: EnergySpec) -> Protocol:
        """The protocol a recipe's energy section asks for."""
        return cls(
            warmup_s=spec.warmup_s,
            window_s=spec.window_s,
            min_windows=spec.min_windows,
            max_windows=spec.max_windows,
            target_ci_rel=spec.target_ci_rel,
            idle_s=spec.idle_s,
        )


def energy_options(spec: EnergySpec) -> dict[str, dict[str, object]]:
    """Backend options by sampler name, from a recipe's ``energy`` section."""
    return {
        "estimate": spec.estimate.model_dump(exclude_none=True),
        "rapl": spec.rapl.model_dump(exclude_none=True),
    }


def select_for(spec: EnergySpec) -> Selection:
    """The sampler a recipe's ``energy`` section asks for, with its backend options."""
    return select_sampler(spec.sampler, options=energy_options(spec), device=spec.device)


def _lock_path() -> Path:
    base = os.environ.get("COMPRESSLAB_LOCK_DIR") or tempfile.gettempdir()
    return Path(base) / "compresslab-measure.lock"


@contextlib.contextmanager
def host_lock() -> Iterator[None]:
    """Hold the host-wide measurement lock: one measurement at a time on this machine."""
    path = _lock_path()
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _window(fn: Callable[[], object], sampler: Sampler, min_s: float) -> tuple[Reading, int, float]:
    calls = 0
    sampler.start()
    t0 = time.perf_counter()
    try:
        while True:
            fn()
            calls += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= min_s:
                break
    except BaseException:
        with contextlib.suppress(Exception):
            sampler.stop()
        raise
    reading = sampler.stop()
    return reading, calls, elapsed


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


def measure_callable(
    fn: Callable[[], object],
    *,
    sampler: Sampler,
    inferences_per_call: int,
    protocol: Protocol | None = None,
) -> EnergyResult:
    """Measure energy per inference of ``fn`` (which runs ``inferences_per_call`` inferences).

    Raises:
        MeasurementError: the sampler returned an implausible reading, or the workload's
            energy is indistinguishable from idle power.
    """
    protocol = protocol or Protocol()
    if inferences_per_call < 1:
        raise ValueError("inferences_per_call must be at least 1")
    period_s = counter_period_s(sampler)
    window_s = max(protocol.window_s, 10 * period_s)
    machine = getattr(sampler, "scope", "machine") == "machine"
    with host_lock():
        idle_w: list[float] = []
        if machine and protocol.idle_s > 0:
            idle_w.append(idle_power_w(sampler, max(protocol.idle_s, 10 * period_s)))
        t_end = time.perf_counter() + protocol.warmup_s
        fn()
        while time.perf_counter() < t_end:
            fn()
        gross: list[float] = []
        durations: list[float] = []
        inferences: list[int] = []
        components: dict[str, list[float]] = {}
        prov: dict[str, str] = {}
        total_s = 0.0
        calls_total = 0
        idle_now = idle_w[0] if idle_w else 0.0

        def net_values(idle: float) -> list[float]:
            return [
                (g * n - idle * d) / n for g, n, d in zip(gross, inferences, durations, strict=True)
            ]

        while True:
            reading, calls, elapsed = _window(fn, sampler, window_s)
            n = calls * inferences_per_call
            gross.append(reading.energy_j / n)
            durations.append(reading.duration_s)
            inferences.append(n)
            for c in reading.components:
                components.setdefault(c.component, []).append(c.energy_j / n)
                prov[c.component] = str(c.provenance)
            total_s += elapsed
            calls_total += calls
            k = len(gross)
            if k >= protocol.min_windows:
                values = net_values(idle_now)
                mean = statistics.fmean(values)
                if mean > 0 and ci95_halfwidth(values) <= protocol.target_ci_rel * mean:
                    break
                if k >= protocol.max_windows:
                    log.info(
                        "CI target %.1f%% not reached after %d windows",
                        100 * protocol.target_ci_rel,
                        k,
                    )
                    break
        if machine and protocol.idle_s > 0:
            idle_w.append(idle_power_w(sampler, max(protocol.idle_s, 10 * period_s)))
    idle = statistics.fmean(idle_w) if idle_w else 0.0
    per_inf = net_values(idle)
    mean = statistics.fmean(per_inf)
    gross_mean = statistics.fmean(gross)
    # Below a millionth of the gross figure, "net" is float rounding of idle minus idle.
    if not math.isfinite(mean) or mean <= 1e-6 * gross_mean:
        raise MeasurementError(
            f"the workload's energy is indistinguishable from idle power ({gross_mean:.3g} J "
            f"per inference gross, idle {idle:.3g} W): lengthen `energy.window_s`, raise "
            "`energy.batch_size`, or quiet the machine"
        )
    provenance = max((Provenance(p) for p in prov.values()), key=lambda p: p.rank)
    return EnergyResult(
        sampler=sampler.name,
        provenance=provenance,
        energy_j_per_inference=mean,
        std_j_per_inference=statistics.stdev(per_inf),
        ci95_j_per_inference=ci95_halfwidth(per_inf),
        windows=len(per_inf),
        n_inferences=sum(inferences),
        batch_size=inferences_per_call,
        latency_s_per_batch=total_s / calls_total,
        duration_s=total_s,
        window_j_per_inference=tuple(per_inf),
        components_j_per_inference={k: statistics.fmean(v) for k, v in components.items()},
        component_provenance=prov,
        gross_j_per_inference=gross_mean,
        idle_power_w=idle,
        idle_measured=bool(idle_w),
        update_period_s=period_s,
        window_s=window_s,
        metadata=sampler.metadata(),
    )


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run with ``threads`` intra-op threads (unchanged when None), restored afterwards."""
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def measure_model(
    model: nn.Module,
    inputs: torch.Tensor,
    *,
    sampler: Sampler,
    protocol: Protocol | None = None,
    threads: int | None = None,
) -> EnergyResult:
    """Measure energy per inference of ``model`` on a fixed batch ``inputs``."""
    model.eval()

    def run() -> None:
        model(inputs)

    bind = getattr(sampler, "bind", None)  # the modeled tier counts the model's calls
    if bind is not None:
        bind(model, inputs)
    try:
        # Inference mode entered once for all windows, not per call (5 µs a call otherwise).
        with torch_threads(threads), torch.inference_mode():
            return measure_callable(
                run, sampler=sampler, inferences_per_call=int(inputs.shape[0]), protocol=protocol
            )
    finally:
        unbind = getattr(sampler, "unbind", None)
        if unbind is not None:
            unbind()
