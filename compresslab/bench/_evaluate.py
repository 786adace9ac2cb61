"""Evaluating one variant, as named steps: assess (build, quality, accuracy, counts), measure.

:meth:`.VariantBench.evaluate` runs them in this order:

1. :func:`assess`: build and place the variant; its quality (perplexity, paired per text with
   the baseline's) and, for the search, the quality gate; the metric: for the search, compared
   with the baseline's on the same examples in looks (:mod:`._staged`: a variant decided below
   the tolerance raises :class:`.Screened`), else on the whole pool; sample answers, profile,
   operation counts and the modeled tier's figure; the baseline is built before any
   measurement.
2. the caller's ``gate`` (the search's prediction may skip the measurement) and
   ``before_measure``.
3. :func:`measure_energy`: paired with the baseline (or the baseline on its own), widened by
   the machine's repeatability; then the workload's phases.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from compresslab.bench._runtime import Runtime, Screened
from compresslab.bench._staged import compare_in_looks, examples_id, pool_outcomes
from compresslab.compress import (
    VariantSpec,
    notes_of,
)
from compresslab.errors import VariantError
from compresslab.protocol.hostlock import host_lock
from compresslab.protocol.timing import PartTimer
from compresslab.recipe import Recipe
from compresslab.records import (
    AccuracyVsBaseline,
    Answer,
    EnergyResult,
    Evaluation,
    OpCounts,
    Outcomes,
    PairedRatio,
    PerplexityVsBaseline,
    Profile,
    Quality,
    perplexity_vs_baseline,
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
    claim: AccuracyVsBaseline | None = None
    text_outcomes: Outcomes | None = None
    perplexity: PerplexityVsBaseline | None = None


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

    With ``min_accuracy`` (the search), a variant is compared with the baseline on the same
    examples in looks (:func:`.compare_in_looks`; the tolerance is the baseline's accuracy on
    the pool minus ``min_accuracy``) and is not measured when the comparison decides it
    ``below`` the tolerance, or stops for futility (it could never be claimed within).
    Building, fine-tuning and evaluating share the host: they hold the measurement lock
    shared, so no measurement runs meanwhile.
    """
    with host_lock(exclusive=False):
        model = bench.place(timer.build(bench.build, spec))
        values = bench.task.quality(model)
        quality = Quality.of(values)
        texts, perplexity = text_comparison(bench, values, spec)
        if quality_gate and not spec.is_baseline:
            check_quality(bench.recipe, quality, perplexity)
        claim = None
        if min_accuracy is not None and not spec.is_baseline and _paired_metric(bench):
            outcomes, claim = compare_in_looks(bench, model, min_accuracy=min_accuracy)
            if claim.decision == "below" or claim.futile:
                # Decided worse than the tolerance allows on the same examples, or so that even
                # the whole pool could not show it within: it can never be claimed, so its
                # energy is not spent.
                why = (
                    "below the tolerance"
                    if claim.decision == "below"
                    else "undecided, and the whole pool could not show it within the tolerance"
                )
                raise Screened(
                    f"{why}: {claim_text(claim)}; energy not measured",
                    accuracy=outcomes.successes / outcomes.n,
                )
            metric, interval = _metric_of(outcomes)
        elif spec.is_baseline and bench.baseline_pool is not None and _paired_metric(bench):
            outcomes = bench.baseline_pool  # built the same way (deterministic): not scored twice
            metric, interval = _metric_of(outcomes)
        else:
            metric, interval, outcomes = scored(bench, model)
        assessed = _counted(bench, model, runtime, metric, interval, quality, outcomes)
        timer.lap("evaluate")
        is_reference = spec.is_baseline and runtime == Runtime()
        if not is_reference:
            _ = bench.reference  # built here, not inside the measurement
            timer.lap("build")
    return dataclasses.replace(
        assessed,
        is_reference=is_reference,
        claim=claim,
        text_outcomes=texts,
        perplexity=perplexity,
    )


def _paired_metric(bench: VariantBench) -> bool:
    """Whether right/wrong outcomes decide the recipe's tolerance (accuracy: yes)."""
    return bench.recipe.task.metric == "accuracy"


def _metric_of(outcomes: Outcomes) -> tuple[float, tuple[float, float]]:
    """Accuracy on the examples an outcome list covers, and its unpaired Wilson interval."""
    from compresslab.tasks.metrics import wilson_interval

    right = outcomes.successes  # unpacked once
    return right / outcomes.n, wilson_interval(right, outcomes.n)


def claim_text(claim: AccuracyVsBaseline) -> str:
    """One phrase for a decided comparison: the difference, its interval, where it stopped."""
    look = f", look {claim.look} of {claim.looks}" if claim.looks > 1 else ""
    return (
        f"{claim.delta * 100:+.2f} points [{claim.low * 100:+.2f}, {claim.high * 100:+.2f}] "
        f"against the baseline on the same {claim.examples} examples (paired{look}), "
        f"tolerance -{claim.tolerance * 100:g} points"
    )


def text_comparison(
    bench: VariantBench, values: Mapping[str, Any], spec: VariantSpec
) -> tuple[Outcomes | None, PerplexityVsBaseline | None]:
    """A language model's per-text NLL outcomes and its perplexity against the baseline's.

    From the task's per-text figures (:meth:`.CausalLMTask.quality`); the perplexity ratio's
    interval is paired on the same texts, decided against ``search.tolerance.perplexity``.
    """
    keys = ("text_nll", "text_tokens", "baseline_text_nll")
    nll, tokens, base_nll = (values.get(k) for k in keys)
    if nll is None or tokens is None:
        return None, None
    batch = int(getattr(bench.task, "text_batch_size", bench.task.eval_batch_size))
    texts = Outcomes.from_nll(nll, tokens, batch_size=batch, examples_id=examples_id(bench))
    limit = bench.recipe.search.tolerance.perplexity
    if base_nll is None or spec.is_baseline or limit is None:
        return texts, None
    base = Outcomes.from_nll(base_nll, tokens, batch_size=batch, examples_id=examples_id(bench))
    return texts, perplexity_vs_baseline(texts, base, tolerance=limit)


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
        metric_examples=assessed.outcomes.n if assessed.outcomes else len(bench.task.eval_labels),
        outcomes=assessed.outcomes,
        accuracy_vs_baseline=assessed.claim,
        text_outcomes=assessed.text_outcomes,
        perplexity_vs_baseline=assessed.perplexity,
    )


def check_quality(
    recipe: Recipe, quality: Quality, perplexity: PerplexityVsBaseline | None = None
) -> None:
    """Raise :class:`.Screened` when the perplexity is decided outside ``search.tolerance``.

    With the per-text comparison (``perplexity``, paired on the same texts), a variant is
    screened when its ratio's interval lies wholly above ``1 + tolerance.perplexity``
    (decision ``below``); an ``undecided`` one is measured, and is not called within. Without
    it (a task that gives no per-text figures), on the point ratio.
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
    if perplexity is not None:
        ratio, low, high = perplexity.ratio, perplexity.low, perplexity.high
        outside = perplexity.decision == "below"
    else:
        low, high = quality.perplexity_ratio_ci95 or (ratio, ratio)
        outside = ratio > 1 + limit
    if outside:
        base = quality.baseline_perplexity if quality.baseline_perplexity else math.nan
        raise Screened(
            f"outside the tolerance: perplexity {quality.perplexity or math.nan:.4g} is "
            f"{(ratio - 1) * 100:+.1f}% from the baseline's {base:.4g}"
            f" (95% CI {(low - 1) * 100:+.1f}% to {(high - 1) * 100:+.1f}%), above the "
            f"+{limit * 100:g}% allowed; energy not measured",
            accuracy=None,
        )


def scored(bench: VariantBench, model: nn.Module) -> tuple[float, tuple[float, float], Outcomes]:
    """The metric on the whole pool, its unpaired 95% (Wilson) interval, each example's outcome.

    The outcomes (right or wrong per example, in the pool's order, computed in the study's
    fixed chunks and evaluation batches: :mod:`._staged`) let a comparison with another model
    on the same examples be paired (:func:`compresslab.records.accuracy_vs_baseline`).
    """
    from compresslab.tasks.metrics import METRICS, wilson_interval

    labels = bench.task.eval_labels
    if bench.recipe.task.metric == "accuracy":
        outcomes = pool_outcomes(bench, model)
        metric, interval = _metric_of(outcomes)
        return metric, interval, outcomes
    preds = bench.task.predictions(model)
    metric = METRICS[bench.recipe.task.metric](preds, labels)
    right = (preds == labels).tolist()
    outcomes = Outcomes.from_correct(
        right, batch_size=bench.task.eval_batch_size, examples_id=examples_id(bench)
    )
    return metric, wilson_interval(sum(right), len(labels)), outcomes
