"""Running a search: open (or resume) the study, enqueue the baseline, optimize to the budget."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from compresslab.bench import PartTimer, compress_context
from compresslab.carbon import carbon_settings
from compresslab.compress import capabilities
from compresslab.energy import Selection, make_sampler
from compresslab.errors import BackendUnavailableError, StorageError, TaskError
from compresslab.machine import fingerprint
from compresslab.protocol import energy_options, select_for
from compresslab.recipe import Recipe, recipe_hash
from compresslab.records import SearchInterrupted, SearchResult, TrialRecord
from compresslab.study import attrs
from compresslab.study._optuna import TrialFailed
from compresslab.study.confirm import confirm_claims
from compresslab.study.heartbeat import REASON_CTRL_C, TrialWatch, fail_own_running
from compresslab.study.objective import Objective
from compresslab.study.predict import (
    PREDICTION_ATTR,
    Predictor,
    prediction_blocker,
    store_final_calibration,
)
from compresslab.study.records import (
    BASELINE_ATTR,
    BUDGET_SKIP,
    baseline_measurements,
    confirmations,
    counts_towards_budget,
    result_from_study,
    trial_record,
)
from compresslab.study.samplers import budget_warnings, choose_sampler, make_optuna_sampler
from compresslab.study.sessions import Session
from compresslab.study.space import SearchSpace
from compresslab.study.storage import (
    default_storage,
    delete_study,
    guard_recipe,
    open_study,
)
from compresslab.study.storage_errors import is_storage_failure, storage_error
from compresslab.study.workers import is_this_process
from compresslab.tasks import Task, load_task
from compresslab.tasks.metrics import METRICS
from compresslab.versions import versions

log = logging.getLogger(__name__)


def run_search(
    recipe: Recipe,
    *,
    base_dir: Path | None = None,
    trials: int | None = None,
    storage: str | None = None,
    on_trial: Callable[[TrialRecord, int, int], None] | None = None,
    fresh: bool = False,
) -> SearchResult:
    """Run (or resume) the recipe's search until ``trials`` distinct variants are measured.

    A variant the sampler proposes again is recorded as a trial that reuses the first
    measurement (``reused_from``) and does not count towards ``trials``.

    Args:
        recipe: a validated recipe.
        base_dir: folder that relative output paths are resolved against (the working dir).
        trials: override of ``search.trials``.
        storage: override of ``search.storage`` (an Optuna storage URL).
        on_trial: called after each trial with its record, the number of completed trials,
            and the target.
        fresh: delete the recipe's study from the storage first and start over.

    Returns:
        Every trial of the study as records, with the frontier and the baseline.

    Raises:
        RecipeChangedError: the study was created under other values of a field that decides
            results (:data:`compresslab.recipe.RESULT_FIELDS`); nothing was run.
    """
    target = trials if trials is not None else recipe.search.trials
    storage_url = storage or recipe.search.storage or default_storage(recipe, base_dir)
    space = SearchSpace.from_recipe(recipe.compression, recipe.runtime)
    for name, why in space.skipped.items():
        log.warning("method %s left out of the search: %s", name, why)
    if not space.by_stage:
        raise BackendUnavailableError(
            "no compression method of the recipe can run on this machine: "
            + "; ".join(f"{n}: {w}" for n, w in space.skipped.items())
        )
    choice = choose_sampler(recipe, space)
    sampler = choice.name
    grid = space.grid() if sampler == "grid" else []
    selection = select_for(recipe.energy)
    log.info("energy sampler: %s", selection.explain())
    if fresh:
        deleted = delete_study(recipe, storage=storage_url)
        if deleted is None:
            log.info(
                "--fresh: no study '%s' in %s yet; starting one", recipe.study_name, storage_url
            )
        else:
            log.warning(
                "--fresh: deleted study '%s' (%d trial(s)) from %s; starting over",
                recipe.study_name,
                deleted,
                storage_url,
            )
    # The search's own energy, all of it (task set-up, builds, evaluation, measurement), in a
    # window of its own; a modeled run has no counter for that, so the estimator takes it.
    cost_name = "estimate" if selection.sampler.name == "model" else selection.sampler.name
    cost = make_sampler(cost_name, energy_options(recipe.energy).get(cost_name))
    cost.start()
    parts = PartTimer()  # the session's own parts: set-up and confirmation
    session: Session | None = None
    study: Any = None
    try:
        # The storage first: a wrong URL is reported before a model loads (minutes for MiniLM).
        study = open_study(recipe, storage=storage_url, sampler=sampler)
        # Before any work: a changed recipe must not add trials to the old study.
        guard_recipe(study, recipe, storage=storage_url)

        def completed() -> int:
            """Distinct variants evaluated (a repeated variant reuses the first result)."""
            return sum(1 for t in study.get_trials(deepcopy=False) if counts_towards_budget(t))

        if completed() >= target and attrs.BASELINE_ACCURACY in study.user_attrs:
            with contextlib.suppress(Exception):
                cost.stop()
            return _nothing_to_do(recipe, study, storage_url, target, on_trial)
        session = Session(study, cost)
        for warning in budget_warnings(recipe, space, sampler, target):
            log.warning(warning)
        # A resumed single-process study would replay the first session's random stream and
        # re-propose the same variants: continue the seed instead (still reproducible).
        finished = len(study.get_trials(deepcopy=False))
        shared = not storage_url.startswith("sqlite")
        # The space too: in a finite grid the sampler proposes variants not yet evaluated.
        study.sampler = make_optuna_sampler(
            recipe, sampler, shared=shared, seed_offset=0 if shared else finished, space=space
        )
        task = load_task(recipe.task)
        # Before the first trial: a method that cannot apply to this model and data is a bad
        # recipe; values that cannot apply are left out, said here and in the report.
        space = space.fitted(task.model, compress_context(recipe, task), recipe.compression)
        for what, why in space.left_out.items():
            log.warning("left out of the search for this model: %s: %s", what, why)
        if sampler == "grid":
            grid = space.grid()
        try:
            baseline_accuracy = METRICS[recipe.task.metric](
                task.predictions(task.model), task.eval_labels
            )
        except Exception as e:  # the user's model: any error; none is a trial's fault
            raise TaskError(
                f"the task's own (uncompressed) model fails on its evaluation inputs "
                f"({type(e).__name__}: {e}): fix the task's model or data; no trial was run"
            ) from e
        min_accuracy = recipe.search.tolerance.min_accuracy(baseline_accuracy)

        # A dead worker's trial (a kill, a lost host) is failed and its variant retried.
        watch = TrialWatch()
        interrupted = watch.recover(study)
        if interrupted:
            log.warning(
                "marked %d interrupted trial(s) as failed; they are retried", len(interrupted)
            )
        _enqueue_start(study, space, grid)
        study.set_user_attr(attrs.BASELINE_ACCURACY, baseline_accuracy)
        info = _report_info(recipe, task, selection, space, sampler, target)
        study.set_user_attr(attrs.REPORT_INFO, {**info, "optuna_sampler_reason": choice.reason})
        predictor = None
        blocker = prediction_blocker(recipe, space)
        if blocker is None:
            predictor = Predictor(
                min_accuracy=min_accuracy,
                min_measured=recipe.search.predict_min_measured,
                max_error=recipe.search.predict_max_error,
            )
        else:
            log.info("no prediction: %s", blocker)

        objective = Objective(
            recipe=recipe,
            task=task,
            space=space,
            selection=selection,
            min_accuracy=min_accuracy,
            target=target,
            predictor=predictor,
        )
        parts.lap("setup")
        session.add_parts(parts.to_dict())
        # gc_after_trial collects the cycles a variant leaves behind; a full collection also
        # walks every object torch, scikit-learn and Optuna loaded (about 0.5 CPU-s per trial
        # on the 2-core VM: a tenth of a digits trial). They live as long as the search, so
        # they are frozen for the loop (and collected first, then unfrozen after it).
        gc.collect()
        gc.freeze()

        # Bounded so that a small space (samplers repeat points) or one where every variant
        # breaks still ends.
        max_attempts = 3 * target + 10
        attempts = 0
        while completed() < target and attempts < max_attempts:
            before = len(study.get_trials(deepcopy=False))
            watch.recover(study)
            try:
                study.optimize(objective, n_trials=1, catch=(TrialFailed,), gc_after_trial=True)
            except Exception as e:
                if not _taken_over(e):
                    raise
                log.warning(
                    "another worker declared this worker's trial dead (no heartbeat for %.0f s) "
                    "and failed it; its variant is retried",
                    watch.grace_s,
                )
            attempts += 1
            # A kill from here on loses at most the next trial's share of the search's energy.
            session.checkpoint()
            new = study.get_trials(deepcopy=False)[before:]
            for t in new:
                if on_trial is not None:
                    on_trial(trial_record(t, min_accuracy=min_accuracy), completed(), target)
            mine = [t for t in new if is_this_process(t.user_attrs)]
            held = any(
                (t.user_attrs.get(attrs.SKIPPED) or "").startswith(BUDGET_SKIP) for t in mine
            )
            # Other workers' running trials hold the rest of the budget: wait until they end
            # (a dead worker's is retried, here or elsewhere), rather than spin.
            if held and not _wait_for_room(study, watch, target, completed):
                break
        if completed() < target:
            log.warning(
                "stopped after %d trials with %d distinct variants evaluated (asked for %d): the "
                "space is smaller than the budget or variants keep failing; see the report",
                attempts,
                completed(),
                target,
            )
        gc.unfreeze()
        study.set_user_attr(PREDICTION_ATTR, {"status": predictor.status if predictor else blocker})
        if predictor is not None:
            store_final_calibration(study)
        if recipe.search.confirm_pairs > 0:
            # Part of the search's cost: the claims a report states are measured again.
            confirm = PartTimer()
            confirm_claims(
                study,
                objective.bench,
                min_accuracy=min_accuracy,
                pairs=recipe.search.confirm_pairs,
            )
            confirm.lap("confirm")
            session.add_parts(confirm.to_dict())
    except BaseException as e:
        gc.unfreeze()
        if session is not None:
            session.abandon(
                "interrupted" if isinstance(e, KeyboardInterrupt) else f"error: {type(e).__name__}"
            )
        else:
            with contextlib.suppress(Exception):
                cost.stop()
        if isinstance(e, KeyboardInterrupt) and study is not None:
            raise _interrupted(recipe, study, storage_url, target) from e
        if isinstance(e, Exception) and not isinstance(e, StorageError) and is_storage_failure(e):
            raise storage_error(e, storage=storage_url, doing="write to") from e
        raise
    session.finish()
    learn_repeatability(study, storage_url)
    learn_ratio_repeatability(study, storage_url)
    return result_from_study(recipe, study, storage_url)


def _taken_over(error: Exception) -> bool:
    """Whether Optuna failed to record a trial because another worker had failed it already."""
    return type(error).__name__ == "UpdateFinishedTrialError" or (
        isinstance(error, ValueError) and str(error).startswith("Cannot tell a ")
    )


def _wait_for_room(
    study: Any, watch: TrialWatch, target: int, completed: Callable[[], int]
) -> bool:
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


def _interrupted(recipe: Recipe, study: Any, storage_url: str, target: int) -> SearchInterrupted:
    """The interrupt a search raises on Ctrl-C, once its own running trial is failed as such."""
    with contextlib.suppress(Exception):
        fail_own_running(study, REASON_CTRL_C)
    completed, result = 0, None
    with contextlib.suppress(Exception):
        completed = sum(1 for t in study.get_trials(deepcopy=False) if counts_towards_budget(t))
    with contextlib.suppress(Exception):
        result = result_from_study(recipe, study, storage_url)
    return SearchInterrupted(completed=completed, target=target, result=result)


def learn_repeatability(study: Any, storage_url: str) -> dict[str, int]:
    """Keep the spread of the baseline measured beside each variant here, for this machine.

    Standalone measurements on this machine widen their interval by it
    (:mod:`compresslab.protocol.repeatability`); only this machine's trials count.

    Returns:
        The measurements kept, by sampler tier (none below three in a tier).
    """
    from compresslab.machine import machine_id
    from compresslab.protocol.repeatability import RepeatabilityStore
    from compresslab.stats import cv

    store = RepeatabilityStore()
    trials = study.get_trials(deepcopy=False)
    kept = {}
    for tier, values in baseline_measurements(trials, machine=machine_id(store.here)).items():
        if len(values) >= 3:
            store.record_study(
                key=f"{storage_url}#{study.study_name}",
                label=f"study {study.study_name}",
                tier=tier,
                cv=cv(values),
                n=len(values),
            )
            kept[tier] = len(values)
    return kept


def learn_ratio_repeatability(study: Any, storage_url: str) -> dict[str, int]:
    """Keep the spread of each confirmation's rounds measured here, for this machine.

    Each confirmation measured a claim in rounds minutes apart (:mod:`.confirm`): their log
    ratios' spread beyond what their own pairs explain is the machine's repeatability of
    paired ratios between spans, which widens every single-span ratio measured here
    afterwards (:mod:`compresslab.protocol.ratio_repeatability`). Only confirmations that
    recorded their rounds' spread and this machine's id count (older ones, or another
    machine's, teach nothing).

    Returns:
        The rounds kept, by sampler tier.
    """
    from compresslab.machine import machine_id
    from compresslab.protocol.ratio_repeatability import MIN_SPANS, record_confirmation
    from compresslab.protocol.repeatability import RepeatabilityStore

    store = RepeatabilityStore()
    here = machine_id(store.here)
    kept: dict[str, int] = {}
    for number, c in sorted(confirmations(study).items()):
        logs, within = list(c.round_log_ratios), list(c.round_within_var)
        if c.machine_id != here or len(logs) < MIN_SPANS or len(within) != len(logs):
            continue
        tier = c.tier or "?"
        record_confirmation(
            store,
            key=f"{storage_url}#{study.study_name}#{number}",
            label=f"trial {number} of study {study.study_name}",
            tier=tier,
            logs=logs,
            within=within,
            at=c.at,
        )
        kept[tier] = kept.get(tier, 0) + len(logs)
    return kept


def _nothing_to_do(
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
        "--trials (or search.trials) to evaluate more, or pass --fresh to start over",
        len(evaluated),
        target,
        study.study_name,
        storage_url,
    )
    if on_trial is not None and evaluated:
        on_trial(evaluated[-1], len(evaluated), target)
    return result


def _enqueue_start(study: Any, space: SearchSpace, grid: list[dict[str, Any]]) -> None:
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


def _report_info(
    recipe: Recipe,
    task: Task,
    selection: Selection,
    space: SearchSpace,
    sampler: str,
    target: int,
) -> dict[str, Any]:
    """Everything the report states about how the study was run (stored with the study)."""
    return {
        # A user's Task often has no description: its name and the entrypoint say what ran.
        "task": task.description
        or (f"{task.name} (entrypoint {recipe.task.entrypoint})" if recipe.task.entrypoint else "")
        or task.name,
        "metric": recipe.task.metric,
        "eval_examples": int(len(task.eval_labels)),
        "sampler_selection": selection.explain(),
        "sampler_metadata": selection.sampler.metadata(),
        "optuna_sampler": sampler,
        "seed": recipe.search.seed,
        "trials_requested": target,
        "recipe_hash": recipe_hash(recipe),
        "machine": fingerprint(),
        "skipped_methods": space.skipped,
        "left_out": space.left_out,
        "batch_size": recipe.energy.batch_size,
        "task_info": dict(task.info),
        "tolerance": recipe.search.tolerance.describe(),
        "carbon": dataclasses.asdict(
            carbon_settings(
                region=recipe.carbon.region,
                intensity_g_per_kwh=recipe.carbon.intensity_g_per_kwh,
                pue=recipe.carbon.pue,
            )
        ),
        "projection": recipe.report.model_dump(),
        # What one "inference" is to the task's users (Task.unit: "inference", a causal
        # task's "generated token"; a user's task may declare e.g. "requests", and
        # `tokens_per_inference`); the report and break-even use it.
        "unit": str(getattr(task, "unit", None) or "inference"),
        "tokens_per_inference": getattr(task, "tokens_per_inference", None),
        "versions": versions(),
        # Which libraries are installed, not imported: the methods' own probes already
        # proved what runs, and importing bitsandbytes costs seconds per worker.
        "capabilities": capabilities(import_libraries=False),
    }
