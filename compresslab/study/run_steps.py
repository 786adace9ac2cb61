"""The steps of a search that are not the session's own (see :class:`.run.SearchRun`)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from compresslab.bench import VariantBench, baseline_outcomes
from compresslab.carbon import carbon_settings
from compresslab.compress import capabilities
from compresslab.energy import Selection
from compresslab.errors import TaskError
from compresslab.machine import fingerprint
from compresslab.recipe import Recipe, recipe_hash
from compresslab.records import (
    Capabilities,
    CarbonIntensity,
    ProjectionSettings,
    SearchInterrupted,
    SearchResult,
    StudyInfo,
    TrialRecord,
    from_json,
)
from compresslab.study.heartbeat import REASON_CTRL_C, TrialWatch, fail_own_running
from compresslab.study.records import (
    BASELINE_ATTR,
    counts_towards_budget,
    result_from_study,
)
from compresslab.study.sampler_choice import SamplerChoice
from compresslab.study.space import SearchSpace
from compresslab.study.workers import is_this_process
from compresslab.tasks import Task
from compresslab.tasks.metrics import METRICS
from compresslab.versions import versions

log = logging.getLogger(__name__)


def baseline_accuracy(recipe: Recipe, bench: VariantBench) -> float:
    """The uncompressed model's metric on the pool (a failure there is the task's, not a trial's).

    Accuracy comes from the baseline's outcomes on the whole pool, in the chunks every variant
    is scored in (:func:`compresslab.bench.baseline_outcomes`), computed once here.
    """
    task = bench.task
    try:
        if recipe.task.metric == "accuracy":
            outcomes = baseline_outcomes(bench)
            return outcomes.successes / outcomes.n
        return METRICS[recipe.task.metric](task.predictions(task.model), task.eval_labels)
    except Exception as e:  # the user's model: any error; none is a trial's fault
        raise TaskError(
            f"the task's own (uncompressed) model fails on its evaluation inputs "
            f"({type(e).__name__}: {e}): fix the task's model or data; no trial was run"
        ) from e


def taken_over(error: Exception) -> bool:
    """Whether Optuna failed to record a trial because another worker had failed it already."""
    return type(error).__name__ == "UpdateFinishedTrialError" or (
        isinstance(error, ValueError) and str(error).startswith("Cannot tell a ")
    )


def wait_for_room(study: Any, watch: TrialWatch, target: int, completed: Callable[[], int]) -> bool:
    """Wait while other workers' running trials hold the rest of the budget.

    Returns True when there is room for another trial again (one of them failed, or was
    declared dead and failed here: its variant is enqueued), False when the budget is reached.
    """
    logged = False
    while True:
        watch.recover(study)
        done = completed()
        if done >= target:
            return False
        running = [
            t
            for t in study.get_trials(deepcopy=False)
            if t.state.name == "RUNNING"
            and counts_towards_budget(t, include_running=True)
            and not is_this_process(t.user_attrs)
        ]
        if done + len(running) < target:
            return True
        if not logged:
            log.info(
                "%d of %d variants done; waiting for %d trial(s) of other workers (one whose "
                "worker sends no heartbeat for %.0f s is failed and retried)",
                done,
                target,
                len(running),
                watch.grace_s,
            )
            logged = True
        time.sleep(min(max(watch.grace_s / 12, 0.2), 5.0))


def interrupted_search(
    recipe: Recipe, study: Any, storage_url: str, target: int
) -> SearchInterrupted:
    """The interrupt a search raises on Ctrl-C, once its own running trial is failed as such."""
    with contextlib.suppress(Exception):
        fail_own_running(study, REASON_CTRL_C)
    completed, result = 0, None
    with contextlib.suppress(Exception):
        completed = sum(1 for t in study.get_trials(deepcopy=False) if counts_towards_budget(t))
    with contextlib.suppress(Exception):
        result = result_from_study(recipe, study, storage_url)
    return SearchInterrupted(completed=completed, target=target, result=result)


def nothing_to_do(
    recipe: Recipe,
    study: Any,
    storage_url: str,
    target: int,
    on_trial: Callable[[TrialRecord, int, int], None] | None,
) -> SearchResult:
    """The budget is already reached: say so, change nothing, return what the study holds."""
    result = result_from_study(recipe, study, storage_url)
    evaluated = [t for t in result.trials if t.evaluated]
    log.warning(
        "nothing to do: %d of %d variants already evaluated in study '%s' (%s); raise "
        "the budget (--trials, trials=, or search.trials) to evaluate more, or start over "
        "(--fresh, fresh=True)",
        len(evaluated),
        target,
        study.study_name,
        storage_url,
    )
    if on_trial is not None and evaluated:
        on_trial(evaluated[-1], len(evaluated), target)
    return result


def enqueue_start(study: Any, space: SearchSpace, grid: list[dict[str, Any]]) -> None:
    """The baseline first (once), then every grid point not yet in the study."""
    done = study.get_trials(deepcopy=False)
    has_baseline = any(
        t.user_attrs.get(BASELINE_ATTR) and t.state.name in ("COMPLETE", "WAITING", "RUNNING")
        for t in done
    )
    if not has_baseline:
        study.enqueue_trial(space.baseline_params(), user_attrs={BASELINE_ATTR: True})
    if grid:
        seen = [t.params for t in done if t.state.name != "FAIL"]
        baseline = space.baseline_params()
        for point in grid:
            if point != baseline and point not in seen:
                study.enqueue_trial(point, skip_if_exists=True)


def report_info(
    recipe: Recipe,
    task: Task,
    selection: Selection,
    space: SearchSpace,
    choice: SamplerChoice,
    target: int,
) -> StudyInfo:
    """Everything the report states about how the study was run (stored with the study)."""
    carbon = carbon_settings(
        region=recipe.carbon.region,
        intensity_g_per_kwh=recipe.carbon.intensity_g_per_kwh,
        pue=recipe.carbon.pue,
    )
    tokens = getattr(task, "tokens_per_inference", None)
    return StudyInfo(
        # A user's Task often has no description: its name and the entrypoint say what ran.
        task=task.description
        or (f"{task.name} (entrypoint {recipe.task.entrypoint})" if recipe.task.entrypoint else "")
        or task.name,
        metric=recipe.task.metric,
        eval_examples=int(len(task.eval_labels)),
        # What one "inference" is to the task's users (Task.unit: "inference", a causal
        # task's "generated token"; a user's task may declare e.g. "requests", and
        # `tokens_per_inference`); the report and break-even use it.
        unit=str(getattr(task, "unit", None) or "inference"),
        tokens_per_inference=None if tokens is None else float(tokens),
        task_info={str(k): str(v) for k, v in task.info.items()},
        optuna_sampler=choice.name,
        optuna_sampler_reason=choice.reason,
        sampler_selection=selection.explain(),
        sampler_metadata={str(k): str(v) for k, v in selection.sampler.metadata().items()},
        seed=recipe.search.seed,
        trials_requested=target,
        batch_size=recipe.energy.batch_size,
        tolerance=recipe.search.tolerance.describe(),
        recipe_hash=recipe_hash(recipe),
        skipped_methods=dict(space.skipped),
        left_out=dict(space.left_out),
        carbon=CarbonIntensity(
            region=carbon.region,
            intensity_g_per_kwh=carbon.intensity_g_per_kwh,
            source=carbon.source,
            pue=carbon.pue,
        ),
        projection=ProjectionSettings(
            requests_per_s=recipe.report.requests_per_s,
            price_per_kwh=recipe.report.price_per_kwh,
            currency=recipe.report.currency,
            history=recipe.report.history,
        ),
        machine=fingerprint(),
        versions=versions(),
        # Which libraries are installed, not imported: the methods' own probes already
        # proved what runs, and importing bitsandbytes costs seconds per worker.
        capabilities=from_json(Capabilities, capabilities(import_libraries=False)),
    )
