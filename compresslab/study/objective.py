"""One trial of the search: the objective Optuna calls, and the boundary around a variant."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from compresslab.bench import Runtime, Screened, VariantBench
from compresslab.compress import VariantSpec
from compresslab.energy import Selection
from compresslab.modeled.calibration import machine_id
from compresslab.recipe import Recipe
from compresslab.records import Evaluation, OpCounts
from compresslab.study import attrs
from compresslab.study._optuna import TrialFailed, load_optuna
from compresslab.study.heartbeat import REASON_CTRL_C, REASON_STORAGE, Heartbeat
from compresslab.study.predict import PredictedDominated, Predictor
from compresslab.study.records import BUDGET_SKIP, CONSTRAINT, counts_towards_budget
from compresslab.study.space import SearchSpace
from compresslab.study.storage_errors import is_storage_failure
from compresslab.study.workers import identity
from compresslab.tasks import Task

log = logging.getLogger(__name__)

#: The longest reason a failed trial stores (a library's message can be pages long).
_MAX_REASON = 2000


def failure_reason(error: BaseException) -> str:
    """``Type: message`` of the exception that failed a trial (the type alone if no message)."""
    message = str(error).strip()
    name = type(error).__name__
    return (f"{name}: {message}" if message else name)[:_MAX_REASON]


def constraint(evaluation: Evaluation, min_accuracy: float) -> float:
    """Optuna's constraint of an evaluated variant: feasible when it is at most 0.

    Decided on the same examples where the bench compared the variant with the baseline: the
    tolerance minus the interval's lower end (at most 0 exactly when the comparison decided
    ``within``; an ``undecided`` variant is infeasible), and likewise for a perplexity
    compared per text. Else (the baseline, a metric compared on no outcomes) the point
    comparison with the minimum accuracy.
    """
    claim = evaluation.accuracy_vs_baseline
    if claim is None:
        return min_accuracy - evaluation.metric
    value = -claim.tolerance - claim.low
    ppl = evaluation.perplexity_vs_baseline
    if ppl is not None:
        value = max(value, ppl.high - (1 + ppl.tolerance))
    if claim.decision == "within" and (ppl is None or ppl.decision == "within"):
        return min(value, 0.0)
    return max(value, 1e-9)  # never feasible unless decided within, whatever the rounding


class Objective:
    """The function Optuna calls once per trial: suggest a variant, evaluate it, record it.

    It is the trial boundary: whatever building, evaluating or measuring the variant raises,
    whatever its type, becomes a failed trial whose ``error`` attribute gives the exception's
    type and message, and the search goes on. Only interrupts (``KeyboardInterrupt``,
    ``SystemExit``) cross it.
    """

    def __init__(
        self,
        *,
        recipe: Recipe,
        task: Task,
        space: SearchSpace,
        selection: Selection,
        min_accuracy: float,
        target: int,
        predictor: Predictor | None = None,
    ) -> None:
        self.space = space
        self.min_accuracy = min_accuracy
        self.target = target
        self.bench = VariantBench(recipe=recipe, task=task, selection=selection)
        #: Skips the measurement of variants predicted dominated (None: measure every one).
        self.predictor = predictor
        self.machine_id = machine_id()

    def __call__(self, trial: Any) -> tuple[float, float]:
        """Evaluate the trial's variant: ``(metric, energy ratio to the baseline)``, or a failure.

        The trial says which worker runs it (:func:`compresslab.study.workers.identity`) and
        sends heartbeats meanwhile. Ctrl-C fails it with the reason ``interrupted (Ctrl-C)``
        (the next search retries its variant) and goes on up.
        """
        for key, value in identity().items():
            trial.set_user_attr(key, value)
        with Heartbeat(trial.study._storage, trial._trial_id):
            try:
                return self._run(trial)
            except KeyboardInterrupt:
                with contextlib.suppress(Exception):
                    trial.set_user_attr(attrs.ERROR, REASON_CTRL_C)
                raise

    def _run(self, trial: Any) -> tuple[float, float]:
        optuna = load_optuna()
        t0 = time.perf_counter()
        trial.set_user_attr(attrs.MACHINE, self.machine_id)
        spec = self.space.suggest(trial)
        # The enqueued baseline runs at the recipe's own runtime settings.
        is_baseline = spec.is_baseline and attrs.read(trial).is_baseline
        runtime = Runtime() if is_baseline else self.space.suggest_runtime(trial)
        is_baseline = spec.is_baseline and runtime == Runtime()
        label = spec.label() + runtime.label()
        attrs.write_variant(
            trial,
            label=label,
            spec=spec.to_dict(),
            runtime=runtime.to_dict(),
            is_baseline=is_baseline,
        )
        previous = self._previous(trial, label)
        if previous is not None:
            # The same variant again (samplers repeat points in small spaces): reuse its
            # result rather than spend energy measuring it twice.
            trial.set_user_attr(attrs.REUSED_FROM, previous.number)
            trial.set_user_attr(attrs.DURATION, time.perf_counter() - t0)
            before = attrs.read(previous)
            if before.prediction is not None:
                attrs.write_prediction(trial, before.prediction)
                raise optuna.TrialPruned(before.prediction.reason)
            if before.screening is not None:
                attrs.write_screening(trial, before.screening)
                raise optuna.TrialPruned(before.screening.reason)
            attrs.copy_result(trial, previous)
            trial.set_constraint(CONSTRAINT, previous.constraints[CONSTRAINT])
            return previous.values[0], previous.values[1]
        self._skip_if_racing(trial, label)
        if self._over_budget(trial):
            trial.set_user_attr(
                attrs.SKIPPED, f"{BUDGET_SKIP} of {self.target} variants is reached"
            )
            raise optuna.TrialPruned("budget reached")
        try:
            # Checked again once the variant is built: a worker that started at the same instant
            # has written its variant by then.
            values = self._evaluate(
                trial, spec, runtime, before_measure=lambda: self._skip_if_racing(trial, label)
            )
        except Screened as e:
            attrs.write_screening(trial, e.screening)
            self.bench.last_parts.lap("evaluate")
            attrs.write_parts(trial, self.bench.last_parts.times())
            trial.set_user_attr(attrs.DURATION, time.perf_counter() - t0)
            raise optuna.TrialPruned(e.reason) from e
        except PredictedDominated as e:
            attrs.write_prediction(trial, e.prediction)
            self.bench.last_parts.lap("evaluate")
            attrs.write_parts(trial, self.bench.last_parts.times())
            trial.set_user_attr(attrs.DURATION, time.perf_counter() - t0)
            log.info("trial %d (%s): %s", trial.number, label, e.prediction.reason)
            raise optuna.TrialPruned(e.prediction.reason) from e
        except optuna.TrialPruned:
            raise  # another worker is measuring this variant (see _skip_if_racing)
        except Exception as e:  # the trial boundary: any library's error fails this trial only
            if type(e).__name__ == "UpdateFinishedTrialError":
                raise  # another worker failed this trial meanwhile (see run_search)
            if is_storage_failure(e):
                # Not the variant's fault: the search stops and says what to do; the trial is
                # retried by the next search (failed here if the storage still takes a write,
                # else found with its process gone).
                with contextlib.suppress(Exception):
                    trial.set_user_attr(attrs.ERROR, REASON_STORAGE)
                raise
            reason = failure_reason(e)
            trial.set_user_attr(attrs.ERROR, reason)
            trial.set_user_attr(attrs.DURATION, time.perf_counter() - t0)
            log.warning("trial %d (%s) failed: %s", trial.number, label, reason)
            raise TrialFailed(reason) from e
        trial.set_user_attr(attrs.DURATION, time.perf_counter() - t0)
        return values

    def _over_budget(self, trial: Any) -> bool:
        """Whether trials numbered before this one already take the whole budget.

        Counted: distinct variants evaluated, and RUNNING trials that may become one (other
        workers'). Trial numbers are unique, so concurrent workers agree on who goes first.
        """
        ahead = sum(
            1
            for t in trial.study.get_trials(deepcopy=False)
            if t.number < trial.number and counts_towards_budget(t, include_running=True)
        )
        return ahead >= self.target

    def _skip_if_racing(self, trial: Any, label: str) -> None:
        """Another worker is evaluating this very variant right now: do not measure it twice.

        The trial is skipped (not counted) and the worker draws another.
        """
        racing = self._racing(trial, label)
        if racing is not None:
            trial.set_user_attr(attrs.SKIPPED, f"trial {racing} is evaluating the same variant")
            raise load_optuna().TrialPruned("the same variant is being evaluated")

    def _racing(self, trial: Any, label: str) -> int | None:
        """The number of an earlier RUNNING trial evaluating the same variant, if any.

        Only earlier trials count, so the first of several racing workers always goes on. Two
        workers that draw the same new variant within the same instant may still both
        measure it (each reads before the other wrote its variant).
        """
        mine = trial.params
        for t in trial.study.get_trials(deepcopy=False):
            if t.number >= trial.number or t.state.name != "RUNNING":
                continue
            other = attrs.read(t)
            if other.reused_from is not None or other.skipped:
                continue
            # The label once the other worker has written it; before that, its parameters
            # (written as they are suggested) already say which variant it builds.
            same = other.variant == label if other.variant is not None else t.params == mine
            if same:
                return int(t.number)
        return None

    def _previous(self, trial: Any, label: str) -> Any:
        for t in trial.study.get_trials(deepcopy=False):
            if t.number == trial.number or t.state.name not in ("COMPLETE", "PRUNED"):
                continue
            other = attrs.read(t)
            if other.variant != label or other.reused_from is not None:
                continue
            if t.state.name == "COMPLETE" and other.evaluation is not None:
                return t
            if t.state.name == "PRUNED" and (
                other.screening is not None or other.prediction is not None
            ):
                return t
        return None

    def _evaluate(
        self,
        trial: Any,
        spec: VariantSpec,
        runtime: Runtime,
        *,
        before_measure: Callable[[], None] | None = None,
    ) -> tuple[float, float]:
        screen = self.min_accuracy if self.bench.recipe.search.screen_examples > 0 else None
        gate = None
        if self.predictor is not None and not spec.is_baseline:
            predictor = self.predictor

            def gate(metric: float, op_counts: OpCounts) -> None:
                """Skip the measurement if the variant is predicted dominated."""
                try:
                    predictor.check(trial.study, metric=metric, op_counts=op_counts)
                except PredictedDominated:
                    # Samplers that read constraints learn from a skipped variant's accuracy.
                    trial.set_constraint(CONSTRAINT, self.min_accuracy - metric)
                    raise

        evaluation = self.bench.evaluate(
            spec,
            min_accuracy=screen,
            runtime=runtime,
            before_measure=before_measure,
            gate=gate,
            quality_gate=True,
        )
        attrs.write_evaluation(trial, evaluation)
        trial.set_constraint(CONSTRAINT, constraint(evaluation, self.min_accuracy))
        # Energy relative to the baseline, from windows interleaved with it: comparable across
        # trials measured hours apart, unlike two absolute figures.
        assert evaluation.vs_baseline is not None  # the bench pairs every variant it measures
        return evaluation.metric, evaluation.vs_baseline.ratio
