"""Measuring one workload, or a candidate against a reference with interleaved windows."""

from __future__ import annotations

import contextlib
import logging
import statistics
from collections.abc import Callable, Iterator

import torch
from torch import nn

from compresslab.energy import Sampler
from compresslab.errors import MeasurementError
from compresslab.protocol.hostlock import host_lock
from compresslab.protocol.types import EnergyResult, PairedResult, Protocol, Workload
from compresslab.protocol.windows import Run, Series, effective_threads
from compresslab.stats import RatioInterval, ci95_halfwidth, paired_ratio

log = logging.getLogger(__name__)


def measure_callable(
    fn: Callable[[], object],
    *,
    sampler: Sampler,
    inferences_per_call: int,
    protocol: Protocol | None = None,
    threads: int | None = None,
) -> EnergyResult:
    """Measure energy per inference of ``fn`` (which runs ``inferences_per_call`` inferences).

    Raises:
        MeasurementError: the sampler returned an implausible reading, or the workload's
            energy cannot be told apart from idle power.
    """
    if inferences_per_call < 1:
        raise ValueError("inferences_per_call must be at least 1")
    return _measure_one(Workload(fn, inferences_per_call, threads), sampler, protocol or Protocol())


def _measure_one(workload: Workload, sampler: Sampler, protocol: Protocol) -> EnergyResult:
    run = Run(sampler, protocol)
    series = Series()
    with host_lock():
        run.measure_idle()
        run.warm_up(workload)
        while True:
            run.wait_for_quiet()
            reading, latencies, elapsed, seen = run.window(workload)
            if not run.keep([seen]):
                continue
            series.add(reading, latencies, elapsed, workload.inferences_per_call)
            if seen is not None:
                series.contention.append(seen)
            k = len(series.gross)
            if k >= protocol.min_windows:
                values = series.net(run.idle)
                mean = statistics.fmean(values)
                if mean > 0 and ci95_halfwidth(values) <= protocol.target_ci_rel * mean:
                    break
                if k >= protocol.max_windows:
                    break
        run.measure_idle()
    result = run.result(series, workload, effective_threads(workload.threads))
    if not result.ci_target_met:
        log.info("CI target %.1f%% not reached after %d windows", 100 * protocol.target_ci_rel, k)
    return result


def measure_paired(
    reference: Workload,
    candidate: Workload,
    *,
    sampler: Sampler,
    protocol: Protocol | None = None,
) -> PairedResult:
    """Measure ``candidate`` against ``reference`` with their windows interleaved (ABBA).

    Pairs of windows repeat until the 95% interval of the candidate / reference ratio is within
    ``target_ci_rel`` of it (after ``min_windows`` pairs), or ``max_windows`` pairs. Both sides
    share the idle power measured before and after.

    Raises:
        MeasurementError: an implausible reading, or a side below resolution.
    """
    protocol = protocol or Protocol()
    run = Run(sampler, protocol)
    sides = {"reference": (reference, Series()), "candidate": (candidate, Series())}
    ratio: RatioInterval | None = None
    with host_lock():
        run.measure_idle()
        run.warm_up(reference)
        run.warm_up(candidate)
        k = 0
        while True:
            run.wait_for_quiet()
            order = ("reference", "candidate") if k % 2 == 0 else ("candidate", "reference")
            got = {name: run.window(sides[name][0]) for name in order}
            if not run.keep([got[name][3] for name in order]):
                continue
            for name in order:
                workload, series = sides[name]
                reading, latencies, elapsed, seen = got[name]
                series.add(reading, latencies, elapsed, workload.inferences_per_call)
                if seen is not None:
                    series.contention.append(seen)
            k += 1
            if k >= protocol.min_windows:
                ratio = _ratio(sides, run.idle)
                if ratio is not None and ratio.halfwidth_rel <= protocol.target_ci_rel:
                    break
                if k >= protocol.max_windows:
                    break
        run.measure_idle()
    results = {
        name: run.result(series, workload, effective_threads(workload.threads))
        for name, (workload, series) in sides.items()
    }
    ratio = _ratio(sides, run.idle)
    if ratio is None:
        raise MeasurementError(
            "a paired window read no energy above idle on one side: the ratio is undefined; "
            "lengthen `energy.window_s` or raise `energy.batch_size`"
        )
    return PairedResult(
        reference=results["reference"],
        candidate=results["candidate"],
        ratio=ratio,
        ci_target_met=ratio.halfwidth_rel <= protocol.target_ci_rel,
    )


def _ratio(sides: dict[str, tuple[Workload, Series]], idle_w: float) -> RatioInterval | None:
    ref = sides["reference"][1].net(idle_w)
    cand = sides["candidate"][1].net(idle_w)
    if min(*ref, *cand) <= 0:
        return None
    return paired_ratio(cand, ref)


def _model_workload(model: nn.Module, inputs: torch.Tensor, threads: int | None) -> Workload:
    model.eval()

    def run() -> None:
        model(inputs)

    return Workload(run, int(inputs.shape[0]), threads, model, inputs)


@contextlib.contextmanager
def _bound(sampler: Sampler) -> Iterator[None]:
    """Inference mode for all windows, and the modeled tier unbound afterwards."""
    try:
        # Inference mode entered once for all windows, not per call (5 µs a call otherwise).
        with torch.inference_mode():
            yield
    finally:
        unbind = getattr(sampler, "unbind", None)
        if unbind is not None:
            unbind()


def measure_model(
    model: nn.Module,
    inputs: torch.Tensor,
    *,
    sampler: Sampler,
    protocol: Protocol | None = None,
    threads: int | None = None,
) -> EnergyResult:
    """Measure energy per inference of ``model`` on a fixed batch ``inputs``."""
    with _bound(sampler):
        return _measure_one(
            _model_workload(model, inputs, threads), sampler, protocol or Protocol()
        )


def measure_models_paired(
    reference: tuple[nn.Module, torch.Tensor, int | None],
    candidate: tuple[nn.Module, torch.Tensor, int | None],
    *,
    sampler: Sampler,
    protocol: Protocol | None = None,
) -> PairedResult:
    """:func:`measure_paired` for two models, each ``(model, batch, threads)``."""
    with _bound(sampler):
        return measure_paired(
            _model_workload(*reference),
            _model_workload(*candidate),
            sampler=sampler,
            protocol=protocol,
        )
