"""Running a search: open (or resume) the study, enqueue the baseline, optimize to the budget."""

from __future__ import annotations

import contextlib
import gc
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from compresslab.bench import PartTimer, compress_context
from compresslab.energy import make_sampler
from compresslab.errors import BackendUnavailableError, StorageError
from compresslab.protocol import energy_options, select_for
from compresslab.recipe import Recipe
from compresslab.records import SearchResult, TrialRecord
from compresslab.study import attrs
from compresslab.study._optuna import TrialFailed
from compresslab.study.before_work import check_resolvable
from compresslab.study.confirm import confirm_claims
from compresslab.study.heartbeat import TrialWatch
from compresslab.study.learning import learn_ratio_repeatability, learn_repeatability
from compresslab.study.objective import Objective
from compresslab.study.predict import (
    PREDICTION_ATTR,
    Predictor,
    prediction_blocker,
    store_final_calibration,
)
from compresslab.study.records import (
    BUDGET_SKIP,
    counts_towards_budget,
    result_from_study,
    trial_record,
)
from compresslab.study.run_steps import (
    baseline_accuracy,
    enqueue_start,
    interrupted_search,
    nothing_to_do,
    report_info,
    taken_over,
    wait_for_room,
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
from compresslab.tasks import load_task

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
    measurement (``reused_from``) and does not count towards ``trials``. The steps are
    :class:`SearchRun`'s, in the order its docstring gives.

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
    run = SearchRun(recipe, base_dir=base_dir, trials=trials, storage=storage, on_trial=on_trial)
    run.start(fresh=fresh)
    try:
        if not run.open():
            return run.nothing_to_do()
        run.prepare()
        run.loop()
        run.finish()
    except BaseException as e:
        translated = run.abandon(e)
        if translated is e:
            raise
        raise translated from e
    return run.learn()


class SearchRun:
    """One search session over a recipe's study, as named steps.

    :func:`run_search` calls them once each, in this order:

    1. ``SearchRun(...)``: the search space, the sampler's choice, the energy sampler and the
       storage URL. Nothing is opened or run; methods that cannot run here are said.
    2. :meth:`start`: ``--fresh`` deletes the study; a window opens that measures the search's
       own energy (set-up, builds, evaluation, measurement, confirmation).
    3. :meth:`open`: the study (a wrong storage URL fails here, before a model loads) and the
       recipe guard. False when the budget is already reached: :meth:`nothing_to_do` then
       returns the study's result and the run ends.
    4. :meth:`prepare`: the task, the space fitted to its model, the objective (its bench),
       the baseline's outcomes on the whole evaluation pool (its accuracy, and what every
       variant is paired with) and the tolerance's minimum, whether the pool can resolve the
       tolerance (said before any trial; an error where the recipe asks), recovery of dead
       workers' trials, the enqueued baseline (and grid), the report's context, the predictor.
    5. :meth:`loop`: one trial at a time until the budget of distinct variants (or a bound on
       attempts) is reached, waiting while other workers' running trials hold the rest.
    6. :meth:`finish`: the prediction's status, the calibration fitted on every variant
       measured here, and the confirmation of the frontier's claims (their energy re-measured,
       their accuracy compared on the task's untouched confirmation split).
    7. :meth:`learn`: the session's energy is closed, this machine's repeatability terms learn
       from the study, and the result is read back.

    Whatever a step from 3 to 6 raises goes through :meth:`abandon`: the session is recorded
    as interrupted or failed, Ctrl-C becomes a :class:`SearchInterrupted` holding what the
    study has, and a storage failure an error that says what to do.
    """

    def __init__(
        self,
        recipe: Recipe,
        *,
        base_dir: Path | None,
        trials: int | None,
        storage: str | None,
        on_trial: Callable[[TrialRecord, int, int], None] | None,
    ) -> None:
        self.recipe = recipe
        self.target = trials if trials is not None else recipe.search.trials
        self.storage_url = storage or recipe.search.storage or default_storage(recipe, base_dir)
        self.on_trial = on_trial
        self.space = SearchSpace.from_recipe(recipe.compression, recipe.runtime)
        for name, why in self.space.skipped.items():
            log.warning("method %s left out of the search: %s", name, why)
        if not self.space.by_stage:
            raise BackendUnavailableError(
                "no compression method of the recipe can run on this machine: "
                + "; ".join(f"{n}: {w}" for n, w in self.space.skipped.items())
            )
        self.choice = choose_sampler(recipe, self.space)
        self.sampler = self.choice.name
        self.grid = self.space.grid() if self.sampler == "grid" else []
        self.selection = select_for(recipe.energy)
        log.info("energy sampler: %s", self.selection.explain())
        self.parts = PartTimer()  # the session's own parts: set-up and confirmation
        self.session: Session | None = None
        self.study: Any = None
        self.cost: Any = None
        self.watch = TrialWatch()
        self.min_accuracy = math.nan
        self.predictor: Predictor | None = None
        self.blocker: str | None = None
        self.objective: Objective | None = None

    def start(self, *, fresh: bool) -> None:
        """Delete the study first with ``fresh``; open the window of the search's own energy."""
        recipe, storage_url = self.recipe, self.storage_url
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
        # A modeled run has no counter for the search's own energy: the estimator takes it.
        name = "estimate" if self.selection.sampler.name == "model" else self.selection.sampler.name
        self.cost = make_sampler(name, energy_options(recipe.energy).get(name))
        self.cost.start()

    def completed(self) -> int:
        """Distinct variants evaluated (a repeated variant reuses the first result)."""
        return sum(1 for t in self.study.get_trials(deepcopy=False) if counts_towards_budget(t))

    def open(self) -> bool:
        """Open the study and guard it; False when its budget is already reached."""
        self.study = open_study(self.recipe, storage=self.storage_url, sampler=self.sampler)
        # Before any work: a changed recipe must not add trials to the old study.
        guard_recipe(self.study, self.recipe, storage=self.storage_url)
        if self.completed() >= self.target and attrs.BASELINE_ACCURACY in self.study.user_attrs:
            with contextlib.suppress(Exception):
                self.cost.stop()
            return False
        self.session = Session(self.study, self.cost)
        return True

    def nothing_to_do(self) -> SearchResult:
        """The result of a study whose budget is already reached (see :func:`nothing_to_do`)."""
        return nothing_to_do(self.recipe, self.study, self.storage_url, self.target, self.on_trial)

    def prepare(self) -> None:
        """Load the task and fit the space to it, then make the objective (see the class)."""
        recipe, study = self.recipe, self.study
        for warning in budget_warnings(recipe, self.space, self.sampler, self.target):
            log.warning(warning)
        # A resumed single-process study would replay the first session's random stream and
        # re-propose the same variants: continue the seed instead (still reproducible).
        finished = len(study.get_trials(deepcopy=False))
        shared = not self.storage_url.startswith("sqlite")
        # The space too: in a finite grid the sampler proposes variants not yet evaluated.
        study.sampler = make_optuna_sampler(
            recipe,
            self.sampler,
            shared=shared,
            seed_offset=0 if shared else finished,
            space=self.space,
        )
        task = load_task(recipe.task)
        # Before the first trial: a method that cannot apply to this model and data is a bad
        # recipe; values that cannot apply are left out, said here and in the report.
        self.space = self.space.fitted(
            task.model, compress_context(recipe, task), recipe.compression
        )
        for what, why in self.space.left_out.items():
            log.warning("left out of the search for this model: %s: %s", what, why)
        if self.sampler == "grid":
            self.grid = self.space.grid()
        # The bench scores the baseline on the whole evaluation pool once: its accuracy is the
        # study's, and its outcomes are what every variant is paired with.
        self.objective = Objective(
            recipe=recipe,
            task=task,
            space=self.space,
            selection=self.selection,
            min_accuracy=math.nan,
            target=self.target,
        )
        base_accuracy = baseline_accuracy(recipe, self.objective.bench)
        self.min_accuracy = recipe.search.tolerance.min_accuracy(base_accuracy)
        self.objective.min_accuracy = self.min_accuracy
        # Before any trial: whether the pool can resolve the tolerance (or exit 2, if asked).
        check_resolvable(recipe, pool=len(task.eval_labels), baseline_accuracy=base_accuracy)
        # A dead worker's trial (a kill, a lost host) is failed and its variant retried.
        interrupted = self.watch.recover(study)
        if interrupted:
            log.warning(
                "marked %d interrupted trial(s) as failed; they are retried", len(interrupted)
            )
        enqueue_start(study, self.space, self.grid)
        study.set_user_attr(attrs.BASELINE_ACCURACY, base_accuracy)
        info = report_info(recipe, task, self.selection, self.space, self.choice, self.target)
        attrs.write_report_info(study, info)
        self.blocker = prediction_blocker(recipe, self.space)
        if self.blocker is None:
            self.predictor = Predictor(
                min_accuracy=self.min_accuracy,
                min_measured=recipe.search.predict_min_measured,
                max_error=recipe.search.predict_max_error,
            )
        else:
            log.info("no prediction: %s", self.blocker)
        self.objective.predictor = self.predictor
        self.parts.lap("setup")
        assert self.session is not None
        self.session.add_parts(self.parts.to_dict())

    def loop(self) -> None:
        """Run trials, one at a time, until the budget of distinct variants is reached."""
        study, watch, session = self.study, self.watch, self.session
        assert session is not None
        # gc_after_trial collects the cycles a variant leaves behind; a full collection also
        # walks every object torch, scikit-learn and Optuna loaded (about 0.5 CPU-s per trial
        # on the 2-core VM: a tenth of a digits trial). They live as long as the search, so
        # they are frozen for the loop (and collected first, then unfrozen after it).
        gc.collect()
        gc.freeze()
        # Bounded so that a small space (samplers repeat points) or one where every variant
        # breaks still ends.
        max_attempts = 3 * self.target + 10
        attempts = 0
        while self.completed() < self.target and attempts < max_attempts:
            before = len(study.get_trials(deepcopy=False))
            watch.recover(study)
            try:
                study.optimize(
                    self.objective, n_trials=1, catch=(TrialFailed,), gc_after_trial=True
                )
            except Exception as e:
                if not taken_over(e):
                    raise
                log.warning(
                    "another worker declared this worker's trial dead (no heartbeat for %.0f s) "
                    "and failed it; its variant is retried",
                    watch.grace_s,
                )
            attempts += 1
            # A kill from here on loses at most the next trial's share of the search's energy.
            session.checkpoint()
            if self._budget_held(study.get_trials(deepcopy=False)[before:]) and not (
                wait_for_room(study, watch, self.target, self.completed)
            ):
                break
        if self.completed() < self.target:
            log.warning(
                "stopped after %d trials with %d distinct variants evaluated (asked for %d): the "
                "space is smaller than the budget or variants keep failing; see the report",
                attempts,
                self.completed(),
                self.target,
            )
        gc.unfreeze()

    def _budget_held(self, new: list[Any]) -> bool:
        """Report the new trials; whether one of ours found the budget held by other workers."""
        for t in new:
            if self.on_trial is not None:
                record = trial_record(t, min_accuracy=self.min_accuracy)
                self.on_trial(record, self.completed(), self.target)
        mine = [t for t in new if is_this_process(t.user_attrs)]
        # Other workers' running trials hold the rest of the budget: wait until they end
        # (a dead worker's is retried, here or elsewhere), rather than spin.
        return any((t.user_attrs.get(attrs.SKIPPED) or "").startswith(BUDGET_SKIP) for t in mine)

    def finish(self) -> None:
        """The prediction's status and final calibration, then the claims confirmed."""
        study = self.study
        status = self.predictor.status if self.predictor else self.blocker
        study.set_user_attr(PREDICTION_ATTR, {"status": status})
        if self.predictor is not None:
            store_final_calibration(study)
        if self.recipe.search.confirm_pairs > 0 and self.objective is not None:
            # Part of the search's cost: the claims a report states are measured again.
            confirm = PartTimer()
            confirm_claims(
                study,
                self.objective.bench,
                min_accuracy=self.min_accuracy,
                pairs=self.recipe.search.confirm_pairs,
            )
            confirm.lap("confirm")
            assert self.session is not None
            self.session.add_parts(confirm.to_dict())

    def abandon(self, error: BaseException) -> BaseException:
        """Record how the session ended; the exception to raise for ``error``."""
        gc.unfreeze()
        if self.session is not None:
            kind = "interrupted" if isinstance(error, KeyboardInterrupt) else "error"
            self.session.abandon(
                kind if kind == "interrupted" else f"error: {type(error).__name__}"
            )
        else:
            with contextlib.suppress(Exception):
                self.cost.stop()
        if isinstance(error, KeyboardInterrupt) and self.study is not None:
            return interrupted_search(self.recipe, self.study, self.storage_url, self.target)
        if (
            isinstance(error, Exception)
            and not isinstance(error, StorageError)
            and is_storage_failure(error)
        ):
            return storage_error(error, storage=self.storage_url, doing="write to")
        return error

    def learn(self) -> SearchResult:
        """Close the session; this machine learns its repeatability; the result, read back."""
        assert self.session is not None
        self.session.finish()
        learn_repeatability(self.study, self.storage_url)
        learn_ratio_repeatability(self.study, self.storage_url)
        return result_from_study(self.recipe, self.study, self.storage_url)
