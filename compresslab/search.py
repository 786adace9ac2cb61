"""The Optuna multi-objective search (the only module that imports optuna).

Objectives: maximize the task metric, minimize energy per inference. The accuracy tolerance is
a constraint (``Trial.set_constraint``: ``min_accuracy - accuracy <= 0`` is feasible), which
the NSGA-II and TPE samplers use and ``study.best_trials`` honours. The
uncompressed baseline is enqueued as the first trial. The study lives in a storage on disk
(SQLite under the report folder by default), so running the same command again resumes it and
runs only the trials still missing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import json
import logging
import math
import os
import platform
import socket
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from compresslab.carbon import carbon_settings
from compresslab.compress import (
    STAGES,
    CompressContext,
    Step,
    VariantSpec,
    build_variant,
    capabilities,
    get_method,
    probe_methods,
)
from compresslab.compress.profile import profile_model
from compresslab.energy import Selection, make_sampler
from compresslab.energy.model import modeled_j_per_inference
from compresslab.errors import (
    BackendUnavailableError,
    CompressLabError,
    RecipeError,
    StorageError,
    TaskError,
)
from compresslab.machine import fingerprint
from compresslab.ops import count_ops
from compresslab.protocol import Protocol, energy_options, measure_model, select_for
from compresslab.recipe import MethodSpec, ParamChoices, ParamRange, Recipe, RuntimeSpec
from compresslab.results import SearchResult, TrialRecord
from compresslab.tasks import Task, load_task
from compresslab.tasks.metrics import METRICS, predict, wilson_interval

log = logging.getLogger(__name__)

_BASELINE_ATTR = "is_baseline"
# Feasible when <= 0 (Optuna's convention): minimum accuracy minus the variant's accuracy.
_CONSTRAINT = "accuracy_below_tolerance"
_HEARTBEAT_S = 20
_BUDGET_SKIP = "the budget"
# SQLAlchemy errors of two workers creating the same tables at once (see open_study).
_SCHEMA_RACE = ("ProgrammingError", "IntegrityError")
# What VariantBench.evaluate records on a trial (copied when a variant is proposed again).
_MEASURED_ATTRS = (
    "accuracy_ci95",
    "energy",
    "modeled_j_per_inference",
    "n_params",
    "macs_per_inference",
    "size_bytes",
    "memory_bytes",
    "sparsity",
)


class _DropFailedTrialTraceback(logging.Filter):
    """Optuna logs a traceback for every failed trial; ours logs one line with the reason."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, _TrialFailed)


def _optuna() -> Any:
    import optuna

    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    study_log = logging.getLogger("optuna.study._optimize")
    if not any(isinstance(f, _DropFailedTrialTraceback) for f in study_log.filters):
        study_log.addFilter(_DropFailedTrialTraceback())
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


@dataclass(frozen=True)
class Runtime:
    """How a variant is run while it is measured (``None``: the recipe's ``energy`` value)."""

    threads: int | None = None
    batch_size: int | None = None
    power_limit_w: float | None = None

    def label(self) -> str:
        """E.g. `` @ threads=1, batch_size=32`` (empty when nothing is set)."""
        parts = [f"{k}={v}" for k, v in dataclasses.asdict(self).items() if v is not None]
        return f" @ {', '.join(parts)}" if parts else ""


@dataclass(frozen=True)
class SearchSpace:
    """The recipe's methods that can run here, grouped by stage, and those left out (why).

    ``runtime`` holds the searched runtime knobs (``runtime.threads``, ``runtime.batch_size``).
    """

    by_stage: dict[str, list[MethodSpec]]
    skipped: dict[str, str]
    runtime: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_recipe(
        cls, methods: Sequence[MethodSpec], runtime: RuntimeSpec | None = None
    ) -> SearchSpace:
        """Probe each method's capabilities; unavailable ones are skipped with their reason."""
        avail = probe_methods(m.method for m in methods)
        by_stage: dict[str, list[MethodSpec]] = {s: [] for s in STAGES}
        skipped = {}
        for m in methods:
            if avail[m.method]:
                by_stage[get_method(m.method).stage].append(m)
            else:
                skipped[m.method] = avail[m.method].reason
        knobs = {
            name: getattr(runtime, name)
            for name in ("threads", "batch_size", "power_limit_w")
            if runtime is not None and getattr(runtime, name) is not None
        }
        if "power_limit_w" in knobs:
            from compresslab.energy.nvml import NvmlSampler

            gpu = NvmlSampler().available()
            if not gpu:
                del knobs["power_limit_w"]
                skipped["runtime.power_limit_w"] = f"needs an NVIDIA GPU: {gpu.reason}"
        return cls({s: v for s, v in by_stage.items() if v}, skipped, knobs)

    def suggest_runtime(self, trial: Any) -> Runtime:
        """Ask the trial for each searched runtime knob."""
        values = {
            name: _suggest_param(trial, f"runtime.{name}", spec)
            for name, spec in self.runtime.items()
        }
        return Runtime(**values)

    def grid(self) -> list[dict[str, Any]]:
        """Every variant of the space as trial parameters (for exhaustive search).

        Raises:
            RecipeError: a continuous range has no ``step`` (the grid would be infinite).
        """
        per_stage: list[list[dict[str, Any]]] = []
        for stage, methods in self.by_stage.items():
            options: list[dict[str, Any]] = [{stage: "none"}]
            for m in methods:
                axes: list[list[tuple[str, Any]]] = []
                for pname, pspec in m.params.items():
                    key = f"{m.method}.{pname}"
                    if isinstance(pspec, ParamRange):
                        axes.append([(key, v) for v in _range_values(pspec, key)])
                    elif isinstance(pspec, ParamChoices):
                        axes.append([(key, v) for v in pspec.choices])
                for combo in itertools.product(*axes):
                    options.append({stage: m.method, **dict(combo)})
            per_stage.append(options)
        for name, spec in self.runtime.items():
            key = f"runtime.{name}"
            if isinstance(spec, ParamRange):
                per_stage.append([{key: v} for v in _range_values(spec, key)])
            elif isinstance(spec, ParamChoices):
                per_stage.append([{key: v} for v in spec.choices])
        return [
            {k: v for part in combo for k, v in part.items()}
            for combo in itertools.product(*per_stage)
        ]

    def baseline_params(self) -> dict[str, str]:
        """Trial parameters of the uncompressed baseline (every stage ``none``)."""
        return {stage: "none" for stage in self.by_stage}

    def suggest(self, trial: Any) -> VariantSpec:
        """Ask the trial for one method (or none) per stage and its parameters."""
        steps = []
        for stage, methods in self.by_stage.items():
            choice = trial.suggest_categorical(stage, ["none", *[m.method for m in methods]])
            if choice == "none":
                continue
            spec = next(m for m in methods if m.method == choice)
            params = {
                pname: _suggest_param(trial, f"{choice}.{pname}", pspec)
                for pname, pspec in spec.params.items()
            }
            steps.append(Step(choice, params))
        return VariantSpec(tuple(steps))


def _suggest_param(trial: Any, key: str, pspec: Any) -> Any:
    """One parameter: a range, a choice, or a fixed value (not a trial parameter)."""
    if isinstance(pspec, ParamRange):
        if pspec.is_int:
            return trial.suggest_int(
                key, int(pspec.low), int(pspec.high), step=int(pspec.step or 1), log=pspec.log
            )
        return trial.suggest_float(
            key, float(pspec.low), float(pspec.high), step=pspec.step, log=pspec.log
        )
    if isinstance(pspec, ParamChoices):
        return trial.suggest_categorical(key, pspec.choices)
    return pspec


def _range_values(spec: ParamRange, key: str) -> list[Any]:
    if spec.is_int:
        return list(range(int(spec.low), int(spec.high) + 1, int(spec.step or 1)))
    if spec.step is None:
        raise RecipeError(
            f"an exhaustive grid needs a step for the continuous range '{key}': add `step` "
            "to it, or use another search.sampler (nsga2, tpe, gp, random)",
            field="search.sampler",
        )
    n = int(math.floor((spec.high - spec.low) / spec.step + 1e-9)) + 1
    return [round(spec.low + i * spec.step, 10) for i in range(n)]


def recipe_hash(recipe: Recipe) -> str:
    """A short hash of the recipe's content (stored with the study and the report)."""
    text = json.dumps(recipe.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def default_storage(recipe: Recipe, base_dir: Path | None = None) -> str:
    """``sqlite:///<output>/<name>/study.db`` (the folder is created)."""
    out = recipe.output_dir(base_dir)
    out.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(out / 'study.db').resolve()}"


def sampler_name(recipe: Recipe, space: SearchSpace | None = None) -> str:
    """The Optuna sampler a recipe gets (``auto`` decides by the size of the space).

    ``auto`` is an exhaustive grid when the whole space fits in the budget, else NSGA-II.
    """
    name = recipe.search.sampler
    if name != "auto":
        return name
    space = space or SearchSpace.from_recipe(recipe.compression, recipe.runtime)
    try:
        size = len(space.grid())
    except RecipeError:
        return "nsga2"  # a continuous range: no finite grid
    return "grid" if size <= recipe.search.trials else "nsga2"


def _make_sampler(recipe: Recipe, name: str, *, shared: bool = False, seed_offset: int = 0) -> Any:
    optuna = _optuna()
    seed = recipe.search.seed + 1_000_003 * seed_offset
    if shared:
        # Workers sharing a study with one seed would all propose the same variants in the
        # same order (duplicates, reuses); each mixes its identity in. A fleet's order of
        # trials is not reproducible anyway.
        worker = f"{seed}:{socket.gethostname()}:{os.getpid()}".encode()
        seed = int.from_bytes(hashlib.sha256(worker).digest()[:4], "big")
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if name == "nsga2":
        # Optuna's default population (50) exceeds most budgets here, which would leave
        # NSGA-II doing random search only; a third of the budget gives it generations.
        population = max(8, min(50, recipe.search.trials // 3))
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=population)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    # random, and grid (whose points are enqueued; the random sampler is never consulted
    # until the grid is exhausted)
    return optuna.samplers.RandomSampler(seed=seed)


def make_storage(url: str) -> Any:
    """An Optuna storage for ``url``.

    - ``sqlite:///path``: one process (the default, under the report folder);
    - ``journal:///path`` (or ``journal:relative/path``): several processes on one host share a
      journal file;
    - ``postgresql://...`` / ``mysql://...``: several hosts share an RDB, with heartbeats so a
      dead worker's trial is failed and retried (``RetryFailedTrialCallback``).
    """
    optuna = _optuna()
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        path = url.removeprefix("journal:")
        path = path.removeprefix("//") if path.startswith("///") else path
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(path))
    if url.startswith("sqlite"):
        return optuna.storages.RDBStorage(url)
    return optuna.storages.RDBStorage(
        url,
        heartbeat_interval=_HEARTBEAT_S,
        grace_period=3 * _HEARTBEAT_S,
        heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
            max_retry=2
        ),
    )


def open_study(recipe: Recipe, *, storage: str, sampler: str | None = None) -> Any:
    """Create or load the recipe's study in ``storage`` (with the named Optuna sampler)."""
    optuna = _optuna()
    shared = not storage.startswith("sqlite")
    optuna_sampler = _make_sampler(recipe, sampler, shared=shared) if sampler else None
    try:
        for attempt in range(3):
            try:
                study = optuna.create_study(
                    study_name=recipe.study_name,
                    storage=make_storage(storage),
                    directions=["maximize", "minimize"],
                    sampler=optuna_sampler,
                    load_if_exists=True,
                )
                break
            except Exception as e:
                # Workers started together on an empty database race to create its tables;
                # the losers see "already exists" and simply open it again.
                if not shared or attempt == 2 or type(e).__name__ not in _SCHEMA_RACE:
                    raise
                time.sleep(0.5 * (attempt + 1))
        study.set_metric_names([recipe.task.metric, "energy_j_per_inference"])
    except ImportError as e:
        raise StorageError(
            f"cannot open the study storage '{storage}': its database driver is not installed "
            f"({e}): `pip install 'psycopg[binary]'` for postgresql://, `pip install pymysql` "
            "and a mysql+pymysql:// URL for MySQL"
        ) from e
    except Exception as e:  # sqlalchemy/optuna raise many kinds for a bad storage
        raise StorageError(
            f"cannot open the study storage '{storage}' ({type(e).__name__}: {e}): check the URL "
            "and that the database is reachable, or remove a corrupt study.db to start afresh"
        ) from e
    return study


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_dead_local_trials(study: Any, *, single_process: bool) -> int:
    """Trials left RUNNING by a dead process become FAIL and are enqueued again.

    With ``single_process`` (SQLite: one process at a time) every RUNNING trial is dead;
    otherwise only those that a process of this host started and that process is gone. RDB
    storages with heartbeats also catch dead workers of other hosts after the grace period.
    """
    optuna = _optuna()
    host = socket.gethostname()
    n = 0
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        pid = t.user_attrs.get("pid")
        local_dead = (
            t.user_attrs.get("host") == host and isinstance(pid, int) and not _pid_alive(pid)
        )
        if not (single_process or local_dead):
            continue
        study._storage.set_trial_user_attr(t._trial_id, "error", "interrupted (process killed)")
        study._storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
        if t.params:
            study.enqueue_trial(
                t.params,
                user_attrs={
                    "retry_of": t.number,
                    _BASELINE_ATTR: bool(t.user_attrs.get(_BASELINE_ATTR)),
                },
            )
        n += 1
    return n


class Screened(Exception):
    """A variant clearly outside the accuracy tolerance: not measured for energy."""

    def __init__(self, reason: str, *, accuracy: float) -> None:
        super().__init__(reason)
        self.reason = reason
        self.accuracy = accuracy


class VariantBench:
    """Builds a variant of a task's model, then measures its accuracy, cost and energy."""

    def __init__(self, *, recipe: Recipe, task: Task, selection: Selection) -> None:
        self.recipe = recipe
        self.task = task
        self.selection = selection
        self.ctx = CompressContext(
            example_inputs=task.example_inputs(),
            keep_modules=(*task.keep_layers, *recipe.task.keep_layers),
            seed=recipe.search.seed,
            train_inputs=task.train_inputs,
            train_labels=task.train_labels,
        )
        self.protocol = Protocol.from_spec(recipe.energy)

    def _screen(self, model: Any, min_accuracy: float) -> None:
        n = min(self.recipe.search.screen_examples, len(self.task.eval_labels))
        if n <= 0 or n >= len(self.task.eval_labels):
            return
        gen = torch.Generator().manual_seed(self.recipe.search.seed)
        idx = torch.randperm(len(self.task.eval_labels), generator=gen)[:n]
        preds = predict(model, self.task.eval_inputs[idx])
        correct = int((preds == self.task.eval_labels[idx]).sum())
        _, high = wilson_interval(correct, n)
        if high < min_accuracy:
            raise Screened(
                f"screened out: accuracy {correct / n:.3f} on {n} examples (95% CI up to "
                f"{high:.3f}) is clearly below the minimum {min_accuracy:.4f}; energy not measured",
                accuracy=correct / n,
            )

    def evaluate(
        self,
        spec: VariantSpec,
        *,
        min_accuracy: float | None = None,
        runtime: Runtime | None = None,
        before_measure: Callable[[], None] | None = None,
    ) -> tuple[float, dict[str, Any]]:
        """The task metric of the variant and its figures (JSON-able, for trial attributes).

        With ``min_accuracy``, a variant clearly below it (the upper end of its accuracy's 95%
        interval, on a subset first, then on the whole split) is not measured for energy:
        :class:`Screened` is raised instead.
        """
        model = build_variant(self.task.model, spec, self.ctx)
        if min_accuracy is not None and not spec.is_baseline:
            self._screen(model, min_accuracy)
        preds = predict(model, self.task.eval_inputs)
        metric = METRICS[self.recipe.task.metric](preds, self.task.eval_labels)
        correct = int((preds == self.task.eval_labels).sum())
        interval = wilson_interval(correct, len(self.task.eval_labels))
        if min_accuracy is not None and not spec.is_baseline and interval[1] < min_accuracy:
            raise Screened(
                f"screened out: accuracy {metric:.4f} (95% CI up to {interval[1]:.4f}) is "
                f"clearly below the minimum {min_accuracy:.4f}; energy not measured",
                accuracy=metric,
            )
        prof = profile_model(model, self.ctx.example_inputs)
        runtime = runtime or Runtime()
        if before_measure is not None:
            before_measure()
        batch = self.task.inference_batch(runtime.batch_size or self.recipe.energy.batch_size)
        with contextlib.ExitStack() as stack:
            if runtime.power_limit_w is not None:
                from compresslab.energy.nvml import power_limit

                stack.enter_context(power_limit(runtime.power_limit_w))
            energy = measure_model(
                model,
                batch,
                sampler=self.selection.sampler,
                protocol=self.protocol,
                threads=runtime.threads or self.recipe.energy.threads,
            )
        # The deterministic modeled tier, recorded beside the measurement (ranks and gates).
        modeled = modeled_j_per_inference(count_ops(model, batch), batch_size=int(batch.shape[0]))
        return metric, {
            "accuracy_ci95": list(interval),
            "energy": energy.to_dict(),
            "modeled_j_per_inference": sum(modeled.values()),
            "n_params": prof.params,
            "macs_per_inference": prof.macs_per_inference,
            "size_bytes": prof.size_bytes,
            "memory_bytes": prof.memory_bytes,
            "sparsity": prof.sparsity,
        }


class _Objective:
    def __init__(
        self,
        *,
        recipe: Recipe,
        task: Task,
        space: SearchSpace,
        selection: Selection,
        min_accuracy: float,
        target: int,
    ) -> None:
        self.space = space
        self.min_accuracy = min_accuracy
        self.target = target
        self.bench = VariantBench(recipe=recipe, task=task, selection=selection)

    def __call__(self, trial: Any) -> tuple[float, float]:
        optuna = _optuna()
        t0 = time.perf_counter()
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        spec = self.space.suggest(trial)
        # The enqueued baseline runs at the recipe's own runtime settings.
        is_baseline = spec.is_baseline and bool(trial.user_attrs.get(_BASELINE_ATTR))
        runtime = Runtime() if is_baseline else self.space.suggest_runtime(trial)
        is_baseline = spec.is_baseline and runtime == Runtime()
        label = spec.label() + runtime.label()
        trial.set_user_attr("variant", label)
        trial.set_user_attr("spec", spec.to_dict())
        trial.set_user_attr("runtime", dataclasses.asdict(runtime))
        trial.set_user_attr(_BASELINE_ATTR, is_baseline)
        previous = self._previous(trial, label)
        if previous is not None:
            # The same variant again (samplers repeat points in small spaces): reuse its
            # result rather than spend energy measuring it twice.
            trial.set_user_attr("reused_from", previous.number)
            trial.set_user_attr("duration_s", time.perf_counter() - t0)
            if previous.state.name == "PRUNED":
                trial.set_user_attr("screened", previous.user_attrs["screened"])
                trial.set_user_attr("screen_accuracy", previous.user_attrs["screen_accuracy"])
                raise optuna.TrialPruned(previous.user_attrs["screened"])
            for key in _MEASURED_ATTRS:
                trial.set_user_attr(key, previous.user_attrs[key])
            trial.set_constraint(_CONSTRAINT, previous.constraints[_CONSTRAINT])
            return previous.values[0], previous.values[1]
        self._skip_if_racing(trial, label)
        if self._over_budget(trial):
            trial.set_user_attr("skipped", f"{_BUDGET_SKIP} of {self.target} variants is reached")
            raise optuna.TrialPruned("budget reached")
        try:
            # Checked again once the variant is built: a worker that started at the same instant
            # has written its variant by then.
            values = self._evaluate(
                trial, spec, runtime, before_measure=lambda: self._skip_if_racing(trial, label)
            )
        except Screened as e:
            trial.set_user_attr("screened", e.reason)
            trial.set_user_attr("screen_accuracy", e.accuracy)
            trial.set_user_attr("duration_s", time.perf_counter() - t0)
            raise optuna.TrialPruned(e.reason) from e
        except (CompressLabError, RuntimeError, ValueError, TypeError, MemoryError) as e:
            trial.set_user_attr("error", f"{type(e).__name__}: {e}"[:2000])
            trial.set_user_attr("duration_s", time.perf_counter() - t0)
            log.warning("trial %d (%s) failed: %s", trial.number, label, e)
            raise _TrialFailed(str(e)) from e
        trial.set_user_attr("duration_s", time.perf_counter() - t0)
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
            trial.set_user_attr("skipped", f"trial {racing} is evaluating the same variant")
            raise _optuna().TrialPruned("the same variant is being evaluated")

    def _racing(self, trial: Any, label: str) -> int | None:
        """The number of an earlier RUNNING trial evaluating the same variant, if any.

        Only earlier trials count, so the first of several racing workers always goes on. Two
        workers that draw the same new variant within the same instant may still both
        measure it (each reads before the other wrote its variant).
        """
        mine = trial.params
        for t in trial.study.get_trials(deepcopy=False):
            ua = t.user_attrs
            if t.number >= trial.number or t.state.name != "RUNNING":
                continue
            if ua.get("reused_from") is not None or ua.get("skipped"):
                continue
            # The label once the other worker has written it; before that, its parameters
            # (written as they are suggested) already say which variant it builds.
            same = ua.get("variant") == label if "variant" in ua else t.params == mine
            if same:
                return int(t.number)
        return None

    def _previous(self, trial: Any, label: str) -> Any:
        for t in trial.study.get_trials(deepcopy=False):
            if t.number == trial.number or t.user_attrs.get("variant") != label:
                continue
            if t.user_attrs.get("reused_from") is not None:
                continue
            if t.state.name == "COMPLETE" and "energy" in t.user_attrs:
                return t
            if t.state.name == "PRUNED" and "screened" in t.user_attrs:
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
        metric, attrs = self.bench.evaluate(
            spec, min_accuracy=screen, runtime=runtime, before_measure=before_measure
        )
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        trial.set_constraint(_CONSTRAINT, self.min_accuracy - metric)
        return metric, attrs["energy"]["energy_j_per_inference"]


def counts_towards_budget(trial: Any, *, include_running: bool = False) -> bool:
    """A distinct variant evaluated: measured, or screened out (not a reuse, skip or failure)."""
    ua = trial.user_attrs
    if ua.get("reused_from") is not None or ua.get("skipped"):
        return False
    state = trial.state.name
    if state == "COMPLETE":
        return True
    if state == "PRUNED":
        return "screened" in ua
    return include_running and state == "RUNNING"


class _TrialFailed(Exception):
    """A variant failed; Optuna records the trial as FAIL and the search goes on."""


def trial_record(trial: Any, *, min_accuracy: float) -> TrialRecord:
    """The plain record of one frozen Optuna trial (the report's only input)."""
    ua = trial.user_attrs
    complete = trial.state.name == "COMPLETE" and trial.values is not None
    accuracy = trial.values[0] if complete else None
    ci = ua.get("accuracy_ci95")
    return TrialRecord(
        number=trial.number,
        state=trial.state.name,
        variant=ua.get("variant", "?"),
        is_baseline=bool(ua.get(_BASELINE_ATTR, False)),
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
        error=ua.get("error") or ua.get("skipped"),
        screened=ua.get("screened"),
        screen_accuracy=ua.get("screen_accuracy"),
        duration_s=ua.get("duration_s"),
        reused_from=ua.get("reused_from"),
        host=ua.get("host"),
    )


def records_from_study(study: Any, *, min_accuracy: float) -> list[TrialRecord]:
    """Plain records of every trial in ``study``."""
    return [trial_record(t, min_accuracy=min_accuracy) for t in study.get_trials(deepcopy=False)]


def run_search(
    recipe: Recipe,
    *,
    base_dir: Path | None = None,
    trials: int | None = None,
    storage: str | None = None,
    on_trial: Callable[[TrialRecord, int, int], None] | None = None,
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

    Returns:
        Every trial of the study as records, with the frontier and the baseline.
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
    sampler = sampler_name(recipe, space)
    grid = space.grid() if sampler == "grid" else []
    selection = select_for(recipe.energy)
    log.info("energy sampler: %s", selection.explain())
    # The search's own energy, all of it (task set-up, builds, evaluation, measurement), in a
    # window of its own; a modeled run has no counter for that, so the estimator takes it.
    cost_name = "estimate" if selection.sampler.name == "model" else selection.sampler.name
    cost = make_sampler(cost_name, energy_options(recipe.energy).get(cost_name))
    cost.start()
    try:
        # The storage first: a wrong URL is reported before a model loads (minutes for MiniLM).
        study = open_study(recipe, storage=storage_url, sampler=sampler)
        # A resumed single-process study would replay the first session's random stream and
        # re-propose the same variants: continue the seed instead (still reproducible).
        finished = len(study.get_trials(deepcopy=False))
        if finished and storage_url.startswith("sqlite"):
            study.sampler = _make_sampler(recipe, sampler, seed_offset=finished)
        task = load_task(recipe.task)
        try:
            baseline_accuracy = METRICS[recipe.task.metric](
                predict(task.model, task.eval_inputs), task.eval_labels
            )
        except Exception as e:  # the user's model: any error; none is a trial's fault
            raise TaskError(
                f"the task's own (uncompressed) model fails on its evaluation inputs "
                f"({type(e).__name__}: {e}): fix the task's model or data; no trial was run"
            ) from e
        min_accuracy = recipe.search.tolerance.min_accuracy(baseline_accuracy)

        interrupted = fail_dead_local_trials(study, single_process=storage_url.startswith("sqlite"))
        if interrupted:
            log.warning("marked %d interrupted trial(s) as failed; they are retried", interrupted)
        _enqueue_start(study, space, grid)
        study.set_user_attr("baseline_accuracy", baseline_accuracy)
        study.set_user_attr(
            "report_info", _report_info(recipe, task, selection, space, sampler, target)
        )

        objective = _Objective(
            recipe=recipe,
            task=task,
            space=space,
            selection=selection,
            min_accuracy=min_accuracy,
            target=target,
        )

        def completed() -> int:
            """Distinct variants evaluated (a repeated variant reuses the first result)."""
            return sum(1 for t in study.get_trials(deepcopy=False) if counts_towards_budget(t))

        # Bounded so that a small space (samplers repeat points) or one where every variant
        # breaks still ends.
        max_attempts = 3 * target + 10
        attempts = 0
        while completed() < target and attempts < max_attempts:
            before = len(study.get_trials(deepcopy=False))
            study.optimize(objective, n_trials=1, catch=(_TrialFailed,), gc_after_trial=True)
            attempts += 1
            new = study.get_trials(deepcopy=False)[before:]
            for t in new:
                if on_trial is not None:
                    on_trial(trial_record(t, min_accuracy=min_accuracy), completed(), target)
            mine = [t for t in new if t.user_attrs.get("pid") == os.getpid()]
            if any(t.user_attrs.get("skipped", "").startswith(_BUDGET_SKIP) for t in mine):
                # Other workers' running trials hold the rest of the budget: this worker is
                # done (spinning would only add skipped trials until max_attempts).
                break
        if completed() < target:
            log.warning(
                "stopped after %d trials with %d distinct variants evaluated (asked for %d): the "
                "space is smaller than the budget or variants keep failing; see the report",
                attempts,
                completed(),
                target,
            )
    except BaseException:
        with contextlib.suppress(Exception):
            cost.stop()
        raise
    _record_search_energy(study, cost.stop())
    return result_from_study(recipe, study, storage_url)


def _enqueue_start(study: Any, space: SearchSpace, grid: list[dict[str, Any]]) -> None:
    """The baseline first (once), then every grid point not yet in the study."""
    done = study.get_trials(deepcopy=False)
    has_baseline = any(
        t.user_attrs.get(_BASELINE_ATTR) and t.state.name in ("COMPLETE", "WAITING", "RUNNING")
        for t in done
    )
    if not has_baseline:
        study.enqueue_trial(space.baseline_params(), user_attrs={_BASELINE_ATTR: True})
    if grid:
        seen = [t.params for t in done if t.state.name != "FAIL"]
        baseline = space.baseline_params()
        for point in grid:
            if point != baseline and point not in seen:
                study.enqueue_trial(point, skip_if_exists=True)


def _record_search_energy(study: Any, reading: Any) -> None:
    """Append this session's energy to the study (a resumed search has several sessions)."""
    sessions = list(study.user_attrs.get("search_energy", []))
    sessions.append(
        {
            "energy_j": reading.energy_j,
            "duration_s": reading.duration_s,
            "provenance": str(reading.provenance),
            "host": socket.gethostname(),
        }
    )
    study.set_user_attr("search_energy", sessions)


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in (
        "compresslab",
        "torch",
        "optuna",
        "torch-pruning",
        "bitsandbytes",
        "torchao",
        "transformers",
    ):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


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
        "task": task.description,
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
        "batch_size": recipe.energy.batch_size,
        "tolerance": recipe.search.tolerance.describe(),
        "carbon": dataclasses.asdict(
            carbon_settings(
                region=recipe.carbon.region,
                intensity_g_per_kwh=recipe.carbon.intensity_g_per_kwh,
                pue=recipe.carbon.pue,
            )
        ),
        "projection": recipe.report.model_dump(),
        "versions": _versions(),
        # Which libraries are installed, not imported: the methods' own probes already
        # proved what runs, and importing bitsandbytes costs seconds per worker.
        "capabilities": capabilities(import_libraries=False),
    }


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
    info["search_energy"] = list(study.user_attrs.get("search_energy", []))
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


def load_result(
    recipe: Recipe, *, storage: str | None = None, base_dir: Path | None = None
) -> SearchResult:
    """Rebuild a recipe's search result from its study storage (no model is loaded)."""
    storage_url = storage or recipe.search.storage or default_storage(recipe, base_dir)
    if storage_url.startswith("sqlite:///"):
        path = Path(storage_url.removeprefix("sqlite:///"))
        if not path.is_file():
            raise StorageError(
                f"no study database at {path}: run `compresslab search` on the recipe first, "
                "or pass --storage"
            )
    return result_from_study(recipe, open_study(recipe, storage=storage_url), storage_url)


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
    return spec, Runtime(**match[0].user_attrs.get("runtime", {}))


def measure_variant(
    recipe: Recipe,
    *,
    trial: int | None = None,
    storage: str | None = None,
    base_dir: Path | None = None,
) -> dict[str, Any]:
    """Measure the recipe's baseline (or the variant of ``trial`` in its study) once more."""
    selection = select_for(recipe.energy)
    spec = VariantSpec()
    runtime = Runtime()
    if trial is not None:
        storage_url = storage or recipe.search.storage or default_storage(recipe, base_dir)
        study = open_study(recipe, storage=storage_url)
        spec, runtime = spec_of_trial(study, trial)
    task = load_task(recipe.task)
    bench = VariantBench(recipe=recipe, task=task, selection=selection)
    metric, attrs = bench.evaluate(spec, runtime=runtime)
    energy = attrs.pop("energy")
    return {
        **energy,
        "variant": spec.label() + runtime.label(),
        "trial": trial,
        "recipe": recipe.name,
        recipe.task.metric: metric,
        "selection": selection.explain(),
        **attrs,
    }


def export_trial(
    recipe: Recipe,
    *,
    trial: int,
    out_dir: Path,
    storage: str | None = None,
    base_dir: Path | None = None,
) -> Path:
    """Write trial ``trial``'s variant as a reproducible artefact (see :mod:`compresslab.export`).

    The variant is rebuilt from the base model (building is deterministic), checked to reload
    to the same outputs, and written with its measured figures.
    """
    from compresslab.export import export_variant

    storage_url = storage or recipe.search.storage or default_storage(recipe, base_dir)
    study = open_study(recipe, storage=storage_url)
    spec, runtime = spec_of_trial(study, trial)
    frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == trial)
    task = load_task(recipe.task)
    bench = VariantBench(recipe=recipe, task=task, selection=select_for(recipe.energy))
    measured = {
        key: frozen.user_attrs.get(key)
        for key in ("variant", "runtime", *_MEASURED_ATTRS)
        if key in frozen.user_attrs
    }
    if frozen.values:
        measured[recipe.task.metric] = frozen.values[0]
    measured["trial"] = trial
    return export_variant(
        task=task,
        spec=spec,
        ctx=bench.ctx,
        recipe_dict=recipe.model_dump(mode="json"),
        out_dir=out_dir,
        measured=measured,
    )
