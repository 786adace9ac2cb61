"""Reading an Optuna study back: plain trial records, the search result, a trial's variant.

The stored figures are read through :mod:`compresslab.study.attrs`, the one module that knows
their keys.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Any

from compresslab.bench import Runtime
from compresslab.compress import Step, VariantSpec
from compresslab.errors import StorageError
from compresslab.protocol.repeatability import tier_of
from compresslab.recipe import Recipe
from compresslab.records import (
    AccuracyVsBaseline,
    Confirmation,
    Evaluation,
    Repeatability,
    SearchResult,
    StudyInfo,
    TrialRecord,
    accuracy_vs_baseline,
    accuracy_vs_baseline_unpaired,
)
from compresslab.stats import cv, t95
from compresslab.study import attrs
from compresslab.study.predict import prediction_status, stored_calibrations
from compresslab.study.sessions import sessions_of

#: Trial attribute that marks the uncompressed baseline.
BASELINE_ATTR = attrs.BASELINE
#: Optuna constraint: minimum accuracy minus the variant's accuracy; feasible when <= 0.
CONSTRAINT = "accuracy_below_tolerance"
#: The start of the ``skipped`` reason of a trial that found the budget already taken.
BUDGET_SKIP = "the budget"
#: Every reason of an interrupted trial starts so; such a trial's variant is retried.
INTERRUPTED = "interrupted"
#: The reason of a failed trial that recorded none: something stopped its worker in the
#: trial's middle (the objective records a reason for every failure of the variant itself).
REASON_UNRECORDED = "interrupted (no reason recorded: its worker stopped during the trial)"


def interruption(trial: Any) -> str | None:
    """Why a failed trial was interrupted (not the variant's own failure), or None."""
    if trial.state.name != "FAIL":
        return None
    reason = trial.user_attrs.get(attrs.ERROR)
    if reason is None:
        return REASON_UNRECORDED
    return str(reason) if str(reason).startswith(INTERRUPTED) else None


def counts_towards_budget(trial: Any, *, include_running: bool = False) -> bool:
    """A distinct variant evaluated: measured, screened out or predicted dominated.

    Not a reuse, a skip or a failure.
    """
    ua = trial.user_attrs
    if ua.get(attrs.REUSED_FROM) is not None or ua.get(attrs.SKIPPED):
        return False
    state = trial.state.name
    if state == "COMPLETE":
        return True
    if state == "PRUNED":
        return attrs.SCREENED in ua or attrs.PREDICTED in ua
    return include_running and state == "RUNNING"


#: Study attribute prefix of a confirmed claim (``confirmed:<trial number>``).
CONFIRMED_PREFIX = attrs.CONFIRMED_PREFIX


def trial_record(
    trial: Any,
    *,
    min_accuracy: float,
    baseline_j: float | None = None,
    confirmed: Confirmation | None = None,
    repeatability_rel: float | None = None,
) -> TrialRecord:
    """The plain record of one frozen Optuna trial (the report's only input).

    Args:
        trial: the frozen trial.
        min_accuracy: the accuracy a variant needs to be feasible.
        baseline_j: the baseline trial's measured joules per inference (the paired scale).
        confirmed: the trial's confirmed re-measurement, if any.
        repeatability_rel: the study's between-measurement spread (see :func:`repeatability`).
    """
    stored = attrs.read(trial)
    complete = trial.state.name == "COMPLETE" and trial.values is not None
    evaluation = stored.evaluation if complete else None
    accuracy = evaluation.metric if evaluation is not None else None
    return TrialRecord(
        number=trial.number,
        state=trial.state.name,
        variant=stored.variant or "?",
        is_baseline=stored.is_baseline,
        params=dict(trial.params),
        evaluation=evaluation,
        feasible=(accuracy >= min_accuracy) if accuracy is not None else None,
        error=stored.error or stored.skipped or interruption(trial),
        screening=stored.screening,
        predicted=stored.prediction,
        duration_s=stored.duration_s,
        reused_from=stored.reused_from,
        host=stored.host,
        confirmed=confirmed,
        baseline_j=baseline_j,
        repeatability_rel=repeatability_rel,
        parts=stored.parts,
    )


def baseline_j_of(trials: list[Any]) -> float | None:
    """The first completed baseline trial's measured joules per inference (None: none yet)."""
    return attrs.baseline_j(trials)


def confirmations(study: Any) -> dict[int, Confirmation]:
    """Confirmed claims of ``study`` by trial number."""
    return attrs.confirmations(study.user_attrs)


def baseline_measurements(
    trials: list[Any], *, machine: str | None = None
) -> dict[str, list[float]]:
    """The baseline's figures measured beside each variant, by sampler tier.

    The tier is :func:`compresslab.protocol.repeatability.tier_of` (sampler and provenance).
    ``machine``: only trials measured on the machine of this id (a fleet's studies mix them).
    """
    by_tier: dict[str, list[float]] = {}
    for t in trials:
        if t.state.name != "COMPLETE":
            continue
        stored = attrs.read(t)
        ref = stored.evaluation.reference_energy if stored.evaluation is not None else None
        if ref is None or not ref.energy_j_per_inference:
            continue
        if machine is not None and stored.machine_id != machine:
            continue
        tier = tier_of(ref.sampler, str(ref.provenance))
        by_tier.setdefault(tier, []).append(ref.energy_j_per_inference)
    return by_tier


def repeatability(trials: list[Any]) -> Repeatability | None:
    """How much one absolute measurement moves between measurements, from the study itself.

    The baseline is measured again beside every variant (the reference side of the pairs),
    minutes or hours apart: the spread of those figures is the machine's repeatability under
    the load it had. Returned as the CV, the number of measurements, and the relative 95%
    half-width of a prediction interval for one more measurement (Student t); None with fewer
    than three.
    """
    values = [v for vs in baseline_measurements(trials).values() for v in vs]
    if len(values) < 3:
        return None
    spread = cv(values)
    n = len(values)
    return Repeatability(cv=spread, n=n, ci95_rel=t95(n - 1) * spread * math.sqrt(1 + 1 / n))


def records_from_study(
    study: Any, *, min_accuracy: float, tolerance: float | None = None
) -> list[TrialRecord]:
    """Plain records of every trial in ``study``, paired figures on the baseline's scale.

    With ``tolerance`` (the metric's allowed drop, in its own units), each evaluated trial's
    metric is also compared with the baseline's (:func:`compared_with_baseline`).
    """
    trials = study.get_trials(deepcopy=False)
    base_j = baseline_j_of(trials)
    confirmed = confirmations(study)
    repeat = repeatability(trials)
    records = [
        trial_record(
            t,
            min_accuracy=min_accuracy,
            baseline_j=base_j,
            confirmed=confirmed.get(t.number),
            repeatability_rel=repeat.ci95_rel if repeat is not None else None,
        )
        for t in trials
    ]
    return records if tolerance is None else compared_with_baseline(records, tolerance)


def compared_with_baseline(records: list[TrialRecord], tolerance: float) -> list[TrialRecord]:
    """``records`` with each evaluated trial's metric compared with the baseline's, decided.

    The comparison the search decided on, where it stored one (paired, in looks: see
    :mod:`compresslab.bench._staged`); else paired on the same examples where both kept their
    outcomes (Newcombe's interval for accuracy, one look:
    :func:`compresslab.records.accuracy_vs_baseline`); else, where both recorded how many
    examples they were evaluated on, the labelled unpaired fallback; else not compared (a
    study written before either was recorded: its feasibility stays the point comparison).

    A compared variant is feasible only when decided ``within`` (and, where the perplexity was
    compared, within its tolerance too): an ``undecided`` one is never called within.
    """
    base = next((r.evaluation for r in records if r.is_baseline and r.complete), None)
    if base is None:
        return records
    out = []
    for r in records:
        claim = _claim(r.evaluation, base, tolerance)
        if claim is None:
            out.append(r)
            continue
        feasible = r.is_baseline or claim.decision == "within"
        ppl = r.evaluation.perplexity_vs_baseline if r.evaluation is not None else None
        if ppl is not None:
            feasible = feasible and ppl.decision == "within"
        out.append(dataclasses.replace(r, accuracy_vs_baseline=claim, feasible=feasible))
    return out


def _claim(ev: Evaluation | None, base: Evaluation, tolerance: float) -> AccuracyVsBaseline | None:
    """One evaluation's comparison with the baseline's (see :func:`compared_with_baseline`)."""
    if ev is None:
        return None
    if ev.accuracy_vs_baseline is not None:
        return ev.accuracy_vs_baseline
    mine, theirs = ev.outcomes, base.outcomes
    if mine is not None and theirs is not None and mine.examples_id == theirs.examples_id:
        with contextlib.suppress(ValueError):  # outcomes that do not pair: the fallback
            claim = accuracy_vs_baseline(mine, theirs.head(mine.n), tolerance=tolerance)
            return dataclasses.replace(claim, pool=theirs.n)
    if ev.metric_examples > 0 and base.metric_examples > 0:
        return accuracy_vs_baseline_unpaired(
            candidate_accuracy=ev.metric,
            candidate_n=ev.metric_examples,
            baseline_accuracy=base.metric,
            baseline_n=base.metric_examples,
            tolerance=tolerance,
        )
    return None


def comparison_tolerance(recipe: Recipe, study: Any) -> float | None:
    """The drop the tolerance allows, to decide comparisons with (None: none is decided).

    The outcomes are right/wrong per example: they decide an accuracy tolerance (a macro-F1
    one needs the per-class counts, not kept yet). None also before the baseline is known.
    """
    base = study.user_attrs.get(attrs.BASELINE_ACCURACY)
    if recipe.task.metric != "accuracy" or base is None:
        return None
    return float(base) - recipe.search.tolerance.min_accuracy(float(base))


def result_from_study(recipe: Recipe, study: Any, storage_url: str) -> SearchResult:
    """The :class:`SearchResult` of a study, from its storage alone (plus the recipe's name)."""
    if attrs.BASELINE_ACCURACY not in study.user_attrs:
        raise StorageError(
            f"study '{study.study_name}' in '{storage_url}' holds no compresslab search yet: "
            f"run `compresslab search` on the recipe first"
        )
    baseline_accuracy = float(study.user_attrs[attrs.BASELINE_ACCURACY])
    min_accuracy = recipe.search.tolerance.min_accuracy(baseline_accuracy)
    return SearchResult(
        recipe_name=recipe.name,
        study_name=study.study_name,
        storage=storage_url,
        trials=records_from_study(
            study, min_accuracy=min_accuracy, tolerance=comparison_tolerance(recipe, study)
        ),
        baseline_accuracy=baseline_accuracy,
        min_accuracy=min_accuracy,
        tolerance=recipe.search.tolerance.describe(),
        info=study_info(study),
    )


def study_info(study: Any) -> StudyInfo:
    """The context of ``study`` (see :class:`~compresslab.records.StudyInfo`).

    What its search stored when it started, completed with what the study as a whole tells:
    its sessions, the repeatability, the importance, the calibrations, the prediction status.
    """
    from compresslab.study.importance import param_importances

    ua = study.user_attrs
    return dataclasses.replace(
        attrs.read_report_info(ua),
        # One entry per session (a resumed or killed search, a fleet's workers), with its state.
        sessions=tuple(sessions_of(ua)),
        repeatability=repeatability(study.get_trials(deepcopy=False)),
        importance=param_importances(study),
        # The energy model calibrated on the study's variants, per machine, and whether it
        # was used.
        calibrations=stored_calibrations(ua),
        prediction=prediction_status(ua),
    )


def spec_of_trial(study: Any, number: int) -> tuple[VariantSpec, Runtime]:
    """The variant a trial of ``study`` built, and how it was run (from its attributes)."""
    trials = study.get_trials(deepcopy=False)
    match = [t for t in trials if t.number == number]
    if not match:
        raise StorageError(
            f"study '{study.study_name}' has no trial {number} (it has {len(trials)} trials): "
            "see trials.csv for the trial numbers"
        )
    stored = attrs.read(match[0])
    if stored.spec is None:
        raise StorageError(f"trial {number} records no variant (it never started building one)")
    spec = VariantSpec(tuple(Step(s["method"], dict(s["params"])) for s in stored.spec["steps"]))
    return spec, Runtime.from_dict(stored.runtime)
