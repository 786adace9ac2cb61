"""Reading an Optuna study back: plain trial records, the search result, a trial's variant.

Also the names of the trial attributes the search writes, so that writer and readers agree.
"""

from __future__ import annotations

import math
from typing import Any

from compresslab.bench import Runtime
from compresslab.compress import Step, VariantSpec
from compresslab.errors import StorageError
from compresslab.protocol.repeatability import tier_of
from compresslab.recipe import Recipe
from compresslab.results import SearchResult, TrialRecord
from compresslab.stats import cv, t95
from compresslab.study.predict import MACHINE_ATTR, PREDICTION_ATTR, stored_calibrations
from compresslab.study.sessions import sessions_of

#: Trial attribute that marks the uncompressed baseline.
BASELINE_ATTR = "is_baseline"
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
    reason = trial.user_attrs.get("error")
    if reason is None:
        return REASON_UNRECORDED
    return str(reason) if str(reason).startswith(INTERRUPTED) else None


def counts_towards_budget(trial: Any, *, include_running: bool = False) -> bool:
    """A distinct variant evaluated: measured, screened out or predicted dominated.

    Not a reuse, a skip or a failure.
    """
    ua = trial.user_attrs
    if ua.get("reused_from") is not None or ua.get("skipped"):
        return False
    state = trial.state.name
    if state == "COMPLETE":
        return True
    if state == "PRUNED":
        return "screened" in ua or "predicted" in ua
    return include_running and state == "RUNNING"


#: Study attribute prefix of a confirmed claim (``confirmed:<trial number>``): finished trials
#: cannot take new attributes, the study can.
CONFIRMED_PREFIX = "confirmed:"


def trial_record(
    trial: Any,
    *,
    min_accuracy: float,
    baseline_j: float | None = None,
    confirmed: dict[str, Any] | None = None,
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
    ua = trial.user_attrs
    complete = trial.state.name == "COMPLETE" and trial.values is not None
    accuracy = trial.values[0] if complete else None
    ci = ua.get("accuracy_ci95")
    return TrialRecord(
        number=trial.number,
        state=trial.state.name,
        variant=ua.get("variant", "?"),
        is_baseline=bool(ua.get(BASELINE_ATTR, False)),
        params=dict(trial.params),
        accuracy=accuracy,
        accuracy_ci95=tuple(ci) if ci else None,
        feasible=(accuracy >= min_accuracy) if accuracy is not None else None,
        energy=ua.get("energy") if complete else None,
        modeled_j_per_inference=ua.get("modeled_j_per_inference"),
        n_params=ua.get("n_params"),
        macs_per_inference=ua.get("macs_per_inference"),
        size_bytes=ua.get("size_bytes"),
        memory_bytes=ua.get("memory_bytes"),
        sparsity=ua.get("sparsity"),
        error=ua.get("error") or ua.get("skipped") or interruption(trial),
        screened=ua.get("screened"),
        screen_accuracy=ua.get("screen_accuracy"),
        duration_s=ua.get("duration_s"),
        reused_from=ua.get("reused_from"),
        host=ua.get("host"),
        notes=tuple(ua.get("notes") or ()),
        vs_baseline=ua.get("vs_baseline") if complete else None,
        reference_energy=ua.get("reference_energy") if complete else None,
        confirmed=confirmed,
        baseline_j=baseline_j,
        repeatability_rel=repeatability_rel,
        predicted=ua.get("predicted"),
        parts=ua.get("parts"),
        quality=dict(ua.get("quality") or {}),
        answers=tuple(ua.get("answers") or ()),
        phases=dict(ua.get("phases") or {}) if complete else {},
    )


def baseline_j_of(trials: list[Any]) -> float | None:
    """The first completed baseline trial's measured joules per inference (None: none yet)."""
    for t in trials:
        if t.state.name == "COMPLETE" and t.user_attrs.get(BASELINE_ATTR):
            energy = t.user_attrs.get("energy") or {}
            if energy.get("energy_j_per_inference"):
                return float(energy["energy_j_per_inference"])
    return None


def confirmations(study: Any) -> dict[int, dict[str, Any]]:
    """Confirmed claims of ``study`` by trial number."""
    return {
        int(key.removeprefix(CONFIRMED_PREFIX)): value
        for key, value in study.user_attrs.items()
        if key.startswith(CONFIRMED_PREFIX)
    }


def baseline_measurements(
    trials: list[Any], *, machine: str | None = None
) -> dict[str, list[float]]:
    """The baseline's figures measured beside each variant, by sampler tier.

    The tier is :func:`compresslab.protocol.repeatability.tier_of` (sampler and provenance).
    ``machine``: only trials measured on the machine of this id (a fleet's studies mix them).
    """
    by_tier: dict[str, list[float]] = {}
    for t in trials:
        ref = t.user_attrs.get("reference_energy") if t.state.name == "COMPLETE" else None
        if not ref or not ref.get("energy_j_per_inference"):
            continue
        if machine is not None and t.user_attrs.get(MACHINE_ATTR) != machine:
            continue
        tier = tier_of(str(ref.get("sampler", "?")), str(ref.get("provenance", "?")))
        by_tier.setdefault(tier, []).append(float(ref["energy_j_per_inference"]))
    return by_tier


def repeatability(trials: list[Any]) -> dict[str, Any] | None:
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
    return {"cv": spread, "n": n, "ci95_rel": t95(n - 1) * spread * math.sqrt(1 + 1 / n)}


def records_from_study(study: Any, *, min_accuracy: float) -> list[TrialRecord]:
    """Plain records of every trial in ``study``, paired figures on the baseline's scale."""
    trials = study.get_trials(deepcopy=False)
    base_j = baseline_j_of(trials)
    confirmed = confirmations(study)
    repeat = repeatability(trials)
    return [
        trial_record(
            t,
            min_accuracy=min_accuracy,
            baseline_j=base_j,
            confirmed=confirmed.get(t.number),
            repeatability_rel=repeat["ci95_rel"] if repeat else None,
        )
        for t in trials
    ]


def result_from_study(recipe: Recipe, study: Any, storage_url: str) -> SearchResult:
    """The :class:`SearchResult` of a study, from its storage alone (plus the recipe's name)."""
    if "baseline_accuracy" not in study.user_attrs:
        raise StorageError(
            f"study '{study.study_name}' in '{storage_url}' holds no compresslab search yet: "
            f"run `compresslab search` on the recipe first"
        )
    baseline_accuracy = float(study.user_attrs["baseline_accuracy"])
    min_accuracy = recipe.search.tolerance.min_accuracy(baseline_accuracy)
    info = dict(study.user_attrs.get("report_info", {}))
    # One entry per session (a resumed or killed search, a fleet's workers), with its state.
    info["search_energy"] = sessions_of(study.user_attrs)
    info["repeatability"] = repeatability(study.get_trials(deepcopy=False))
    from compresslab.study.importance import param_importances

    info["importance"] = param_importances(study)
    # The energy model calibrated on the study's variants, per machine, and whether it was used.
    info["calibrations"] = stored_calibrations(study.user_attrs)
    info["prediction"] = study.user_attrs.get(PREDICTION_ATTR)
    return SearchResult(
        recipe_name=recipe.name,
        study_name=study.study_name,
        storage=storage_url,
        trials=records_from_study(study, min_accuracy=min_accuracy),
        baseline_accuracy=baseline_accuracy,
        min_accuracy=min_accuracy,
        tolerance=recipe.search.tolerance.describe(),
        info=info,
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
    stored = match[0].user_attrs.get("spec")
    if stored is None:
        raise StorageError(f"trial {number} records no variant (it never started building one)")
    spec = VariantSpec(tuple(Step(s["method"], dict(s["params"])) for s in stored["steps"]))
    return spec, Runtime.from_dict(match[0].user_attrs.get("runtime"))
