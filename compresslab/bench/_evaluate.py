"""Evaluating one variant, as named steps: assess (build, quality, accuracy, counts), measure.

:meth:`.VariantBench.evaluate` runs them in this order:

1. :func:`assess`: build and place the variant; its quality (perplexity) and, for the search,
   the quality gate; screening on a subset, then the metric on the whole split (a variant
   below the minimum raises :class:`.Screened`); sample answers, profile, operation counts
   and the modeled tier's figure; the baseline is built before any measurement.
2. the caller's ``gate`` (the search's prediction may skip the measurement) and
   ``before_measure``.
3. :func:`measure_energy`: paired with the baseline (or the baseline on its own), widened by
   the machine's repeatability; then the workload's phases.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from compresslab.bench._runtime import Runtime, Screened
from compresslab.compress import (
    VariantSpec,
    notes_of,
)
from compresslab.errors import VariantError
from compresslab.protocol.hostlock import host_lock
from compresslab.protocol.timing import PartTimer
from compresslab.recipe import Recipe
from compresslab.records import (
    Answer,
    EnergyResult,
    Evaluation,
    OpCounts,
    Outcomes,
    PairedRatio,
    Profile,
    Quality,
)

if TYPE_CHECKING:
    import torch
    from torch import nn

    from compresslab.bench._variant import VariantBench
    from compresslab.protocol import EnergyResult
    from compresslab.tasks import TaskWorkload


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Assessed:
    """What is known of a variant before its energy is measured (:func:`assess`)."""

    model: nn.Module
    metric: float
    interval: tuple[float, float]
    quality: Quality
    answers: tuple[Answer, ...]
    profile: Profile
    counts: OpCounts
    modeled_j_per_inference: float
    batch: torch.Tensor
    work: TaskWorkload
    is_reference: bool
    outcomes: Outcomes | None = None


def assess(
    bench: VariantBench,
    spec: VariantSpec,
    runtime: Runtime,
    timer: PartTimer,
    *,
    min_accuracy: float | None,
    quality_gate: bool,
) -> Assessed:
    """Step 1: everything but the energy (raises :class:`.Screened` for a variant below).

    Building, fine-tuning and evaluating share the host: they hold the measurement lock shared,
    so no measurement runs meanwhile.
    """
    with host_lock(exclusive=False):
        model = bench.place(timer.build(bench.build, spec))
        screening = min_accuracy is not None and not spec.is_baseline
        quality = Quality.of(bench.task.quality(model))
        if quality_gate and not spec.is_baseline:
            check_quality(bench.recipe, quality)
        if min_accuracy is not None and screening:
            screen(bench, model, min_accuracy)
        metric, interval, outcomes = scored(bench, model)
        if min_accuracy is not None and screening and metric < min_accuracy:
            # Feasibility (the frontier, the claims, the best variant) is judged on this
            # figure: a variant below it can never be claimed, so its energy is not spent.
            raise Screened(
                f"below the tolerance: accuracy {metric:.4f} on the whole split (95% CI "
                f"{interval[0]:.4f} to {interval[1]:.4f}) is under the minimum "
                f"{min_accuracy:.4f}, so it cannot be on the feasible frontier; energy not "
                "measured",
                accuracy=metric,
            )
        assessed = _counted(bench, model, runtime, metric, interval, quality, outcomes)
        timer.lap("evaluate")
        is_reference = spec.is_baseline and runtime == Runtime()
        if not is_reference:
            _ = bench.reference  # built here, not inside the measurement
            timer.lap("build")
    return dataclasses.replace(assessed, is_reference=is_reference)


def _counted(
    bench: VariantBench,
    model: nn.Module,
    runtime: Runtime,
    metric: float,
    interval: tuple[float, float],
    quality: Quality,
    outcomes: Outcomes,
) -> Assessed:
    """Answers, profile, operation counts and the modeled figure of an assessed variant."""
    from compresslab.compress.profile import profile_model
    from compresslab.modeled.costs import modeled_j_per_inference
    from compresslab.modeled.ops import count_ops

    answers = tuple(Answer(**a) for a in bench.task.answers(model))
    prof = profile_model(model, bench.on_device(bench.ctx.example_inputs))
    batch = bench.inference_batch(runtime)
    work = bench.workload(model, batch, runtime)
    # The deterministic modeled tier, recorded beside the measurement (ranks and gates), per
    # unit of the workload (a classifier's inference, a generated token). The counts are kept
    # too: a study calibrates the modeled tier on them.
    size = int(batch.shape[0])
    counts = dataclasses.replace(count_ops(work.runner, work.inputs), batch_size=size)
    modeled = modeled_j_per_inference(counts, batch_size=size)
    # MACs per unit of the workload (a generated token) when it is not the model's own.
    macs = prof.macs_per_inference if work.runner is model else sum(counts.macs.values())
    return Assessed(
        model=model,
        metric=metric,
        interval=interval,
        quality=quality,
        answers=answers,
        profile=Profile(
            n_params=prof.params,
            macs_per_inference=macs,
            size_bytes=prof.size_bytes,
            memory_bytes=prof.memory_bytes,
            sparsity=prof.sparsity,
        ),
        counts=counts,
        modeled_j_per_inference=sum(modeled.values()),
        batch=batch,
        work=work,
        is_reference=False,
        outcomes=outcomes,
    )


def measure_energy(
    bench: VariantBench,
    spec: VariantSpec,
    runtime: Runtime,
    timer: PartTimer,
    assessed: Assessed,
    *,
    standalone: bool,
) -> Evaluation:
    """Step 3: the energy, paired with the baseline (or the baseline's own), and the phases."""
    model, batch = assessed.model, assessed.batch
    timer.mark()
    reference: EnergyResult | None = None
    if assessed.is_reference:
        energy = bench.measure(
            model, runtime=runtime, inputs=batch, variant=spec.label(), standalone=standalone
        )
        vs = PairedRatio.itself()
    else:
        # A single span of pairs: its interval is widened by the machine's measured spread of
        # ratios between spans (a standalone one also joins the variant's history).
        paired = bench.ratio_repeatable(
            bench.measure_paired(model, runtime=runtime),
            runtime=runtime,
            variant=spec.label(),
            record=standalone,
        )
        energy, reference, vs = paired.candidate, paired.reference, paired.vs_reference()
        if standalone:
            energy = bench.repeatable(
                energy, model=model, inputs=batch, runtime=runtime, variant=spec.label()
            )
    phases = {name: bench.measure_work(w, runtime) for name, w in assessed.work.phases.items()}
    timer.lap("measure")
    return Evaluation(
        metric=assessed.metric,
        metric_ci95=assessed.interval,
        energy=energy,
        vs_baseline=vs,
        reference_energy=reference,
        modeled_j_per_inference=assessed.modeled_j_per_inference,
        profile=assessed.profile,
        op_counts=assessed.counts,
        notes=tuple(notes_of(model)),
        quality=assessed.quality,
        answers=assessed.answers,
        phases=phases,
        parts=timer.times(),
        metric_examples=len(bench.task.eval_labels),
        outcomes=assessed.outcomes,
    )


def check_quality(recipe: Recipe, quality: Quality) -> None:
    """Raise :class:`.Screened` when the perplexity is outside ``search.tolerance``.

    The limit is on the variant's perplexity relative to the baseline's on the same tokens (a
    point estimate, like accuracy's minimum); its interval is recorded.
    """
    limit = recipe.search.tolerance.perplexity
    if limit is None:
        return
    ratio = quality.perplexity_ratio
    if ratio is None:
        raise VariantError(
            "search.tolerance.perplexity needs the variant's perplexity ratio, and the task "
            "measured none: remove search.tolerance.perplexity from the recipe"
        )
    if ratio > 1 + limit:
        low, high = quality.perplexity_ratio_ci95 or (ratio, ratio)
        base = quality.baseline_perplexity if quality.baseline_perplexity else math.nan
        raise Screened(
            f"outside the tolerance: perplexity {quality.perplexity or math.nan:.4g} is "
            f"{(ratio - 1) * 100:+.1f}% from the baseline's {base:.4g}"
            f" (95% CI {(low - 1) * 100:+.1f}% to {(high - 1) * 100:+.1f}%), above the "
            f"+{limit * 100:g}% allowed; energy not measured",
            accuracy=None,
        )


def screen(bench: VariantBench, model: nn.Module, min_accuracy: float) -> None:
    """Raise :class:`Screened` when a subset shows the model clearly below ``min_accuracy``.

    The subset is ``search.screen_examples`` examples drawn with the recipe's seed; the
    upper end of the accuracy's 95% interval on it must reach ``min_accuracy``.
    """
    import torch

    from compresslab.tasks.metrics import wilson_interval

    labels = bench.task.eval_labels
    n = min(bench.recipe.search.screen_examples, len(labels))
    if n <= 0 or n >= len(labels):
        return
    gen = torch.Generator().manual_seed(bench.recipe.search.seed)
    idx = torch.randperm(len(labels), generator=gen)[:n]
    preds = bench.task.predictions(model, idx)
    correct = int((preds == labels[idx]).sum())
    _, high = wilson_interval(correct, n)
    if high < min_accuracy:
        raise Screened(
            f"screened out: accuracy {correct / n:.3f} on {n} examples (95% CI up to "
            f"{high:.3f}) is clearly below the minimum {min_accuracy:.4f}; energy not measured",
            accuracy=correct / n,
        )


def scored(bench: VariantBench, model: nn.Module) -> tuple[float, tuple[float, float], Outcomes]:
    """The metric, its unpaired 95% (Wilson) interval, and each example's outcome.

    The outcomes (right or wrong per example, in the split's order, computed in the task's
    fixed evaluation batches) let a comparison with another model on the same examples be
    paired (:func:`compresslab.records.accuracy_vs_baseline`).
    """
    from compresslab.tasks.metrics import METRICS, wilson_interval

    labels = bench.task.eval_labels
    preds = bench.task.predictions(model)
    metric = METRICS[bench.recipe.task.metric](preds, labels)
    right = (preds == labels).tolist()
    outcomes = Outcomes.from_correct(
        right, batch_size=bench.task.eval_batch_size, examples_id=examples_id(bench)
    )
    return metric, wilson_interval(sum(right), len(labels)), outcomes


def examples_id(bench: VariantBench) -> str:
    """What identifies the evaluation examples: the task, its options and its labels."""
    if bench.examples_key is None:
        import hashlib

        digest = hashlib.sha256(bench.recipe.task.model_dump_json().encode())
        digest.update(bench.task.eval_labels.cpu().numpy().tobytes())
        bench.examples_key = digest.hexdigest()[:16]
    return bench.examples_key
