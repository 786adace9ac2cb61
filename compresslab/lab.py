"""Notebook exploration: a search as a :class:`Study` of pandas DataFrames, plots and models.

Example::

    from compresslab import lab

    study = lab.search("recipes/digits.yaml", trials=8)   # a progress bar, then a Study
    study                        # in Jupyter: a summary with the frontier table
    study.trials                 # one row per trial (pandas), as trials.csv
    study.frontier               # the feasible Pareto frontier, cheapest first
    study.plot()                 # accuracy against energy, inline
    best = study.best()          # the cheapest variant within the recipe's tolerance
    model = study.build(best)    # that variant as a torch model
    study.export(best, "exported/best")

    study = lab.open("recipes/digits.yaml")                # a finished study, from its storage

The progress bar is the only output of this module: in Jupyter it is one HTML line updated in
place (no widget library needed, and a saved notebook shows its final state); in a terminal it
is a rich progress bar on stderr. Everything else is logged.
"""

from __future__ import annotations

import contextlib
import functools
import html
import logging
import math
import numbers
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from compresslab.progress import search_progress
from compresslab.recipe import Recipe
from compresslab.records import SearchResult, TrialRecord
from compresslab.report.plot import draw_pareto

if TYPE_CHECKING:
    import pandas as pd
    import torch
    from matplotlib.axes import Axes
    from torch import nn

    from compresslab.bench import Runtime, VariantBench
    from compresslab.compress import VariantSpec
    from compresslab.protocol import EnergyResult
    from compresslab.tasks import Task

    #: What names a trial: its number, its :class:`TrialRecord`, or a row of ``Study.trials``
    #: (anything with a ``"trial"`` key, such as what :meth:`Study.best` returns).
    TrialRef: TypeAlias = int | TrialRecord | pd.Series | Mapping[str, Any]

__all__ = ["Study", "compare", "open", "search"]

log = logging.getLogger(__name__)

_SUMMARY_COLUMNS = [
    "trial",
    "variant",
    "accuracy",
    "energy_j_per_inference",
    "ci95_j_per_inference",
    "provenance",
    "energy_ratio_vs_baseline",
    "latency_p50_ms",
    "latency_p95_ms",
    "size_bytes",
]


def search(
    recipe: Recipe | str | Path | Mapping[str, Any],
    *,
    trials: int | None = None,
    storage: str | None = None,
    base_dir: Path | None = None,
    progress: bool = True,
    write_report: bool = True,
    fresh: bool = False,
) -> Study:
    """Run (or resume) a recipe's search and return it as a :class:`Study`.

    Args:
        recipe: a :class:`Recipe`, a path to its YAML, or the recipe as a dict.
        trials: distinct variants to reach (default: the recipe's ``search.trials``).
        storage: Optuna storage URL (default: the recipe's, else SQLite under the report
            folder).
        base_dir: folder the recipe's relative ``output`` is resolved against (default: the
            working directory).
        progress: show a progress bar (HTML in Jupyter, rich on stderr in a terminal);
            ``False`` prints nothing at all.
        write_report: also write the report files under ``<output>/<name>/``.
        fresh: delete the recipe's study from its storage (every trial) and start over; needed
            when a field that decides results changed since the study was created.

    Returns:
        The study, with every trial so far (a resumed search keeps the earlier ones).

    Raises:
        ValueError: ``trials`` is below 1.
        RecipeError: the recipe is invalid, or it changed in a field that decides results
            since its study was created (before any work starts; ``fresh=True`` starts over).
        CompressLabError: every trial failed (the message gives the most common reason).
    """
    from compresslab import api

    if trials is not None and trials < 1:
        raise ValueError(f"trials must be at least 1, not {trials}")
    rec = recipe if isinstance(recipe, Recipe) else api.load_recipe(recipe)
    target = trials if trials is not None else rec.search.trials
    with (
        _process_state_kept(),
        search_progress(f"search {rec.name}", target, enabled=progress) as on_trial,
    ):
        result = api.search(
            rec,
            trials=trials,
            storage=storage,
            base_dir=base_dir,
            on_trial=on_trial,
            write_report=write_report,
            fresh=fresh,
        )
    study = Study(rec, result, base_dir=base_dir)
    log.info("search %s: %s", rec.name, study.records.counts())
    return study


# Shadows the builtin inside this module on purpose (`lab.open(recipe)`); nothing here opens files.
def open(
    recipe: Recipe | str | Path | Mapping[str, Any],
    *,
    storage: str | None = None,
    base_dir: Path | None = None,
) -> Study:
    """Open a recipe's existing study from its storage (nothing is run or written).

    Args:
        recipe: a :class:`Recipe`, a path to its YAML, or the recipe as a dict.
        storage: Optuna storage URL (default: the recipe's, else its SQLite file).
        base_dir: folder the recipe's relative ``output`` is resolved against.

    Raises:
        StorageError: there is no study yet (run :func:`search` first) or the storage is
            unreachable.
    """
    from compresslab import api
    from compresslab.study import load_result

    rec = recipe if isinstance(recipe, Recipe) else api.load_recipe(recipe)
    with _process_state_kept():
        result = load_result(rec, storage=storage, base_dir=base_dir)
    return Study(rec, result, base_dir=base_dir)


def compare(a: Study | str | Path, b: Study | str | Path, *, force: bool = False) -> pd.DataFrame:
    """Two studies side by side (variants in both): a DataFrame of their figures and ratios.

    Args:
        a: a :class:`Study`, or a report folder holding ``study.db`` (or a storage URL).
        b: likewise.
        force: divide absolute figures of different provenance anyway.

    The comparison's warnings (other machines, other recipes, mixed provenance) are logged.
    """
    from compresslab.report.compare import compare_results
    from compresslab.study import load_stored_result

    results = [s.records if isinstance(s, Study) else load_stored_result(s) for s in (a, b)]
    comparison = compare_results(results[0], results[1], force=force)
    for warning in comparison.warnings:
        log.warning("compare: %s", warning)
    return comparison.frame()


class Study:
    """A recipe and its search result, shaped for a notebook.

    The trials are a snapshot taken when the study was searched or opened: :meth:`reload`
    reads the storage again. ``trials`` and ``frontier`` are pandas DataFrames with the
    columns of ``trials.csv``; ``records`` is the underlying :class:`SearchResult`.

    Attributes:
        recipe: the validated recipe.
        records: the search result (plain :class:`TrialRecord` objects, the frontier).
        base_dir: folder the recipe's relative paths are resolved against.
    """

    def __init__(
        self, recipe: Recipe, records: SearchResult, *, base_dir: Path | None = None
    ) -> None:
        self.recipe = recipe
        self.records = records
        self.base_dir = base_dir

    # --- the tables ---------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The recipe's name."""
        return self.recipe.name

    @property
    def storage(self) -> str:
        """The Optuna storage URL of the study."""
        return self.records.storage

    @property
    def output_dir(self) -> Path:
        """Where the report files are written (``<output>/<name>/``)."""
        return self.recipe.output_dir(self.base_dir)

    @functools.cached_property
    def trials(self) -> pd.DataFrame:
        """One row per trial (the columns of ``trials.csv``, then ``param.*``)."""
        from compresslab.report.table import trials_frame

        return trials_frame(self.records)

    @functools.cached_property
    def frontier(self) -> pd.DataFrame:
        """The feasible Pareto frontier, cheapest first (rows of :attr:`trials`)."""
        from compresslab.report.table import frontier_frame

        return frontier_frame(self.records)

    @property
    def baseline(self) -> pd.Series | None:
        """The uncompressed model's row of :attr:`trials` (``None`` if it did not complete)."""
        base = self.records.baseline
        return None if base is None else self._row(base.number)

    def best(self, *, max_drop: float | None = None) -> pd.Series | None:
        """The cheapest measured variant whose accuracy is within a drop from the baseline.

        Args:
            max_drop: the largest absolute accuracy drop from the baseline's accuracy allowed
                (e.g. ``0.02`` for two points); default: the recipe's ``search.tolerance``.

        Returns:
            Its row of :attr:`trials` (fewest joules per inference; the more accurate on a
            tie), or ``None`` when no measured variant qualifies.
        """
        valid = isinstance(max_drop, numbers.Real) and not isinstance(max_drop, bool)
        if max_drop is not None and not (valid and max_drop >= 0):
            raise ValueError(f"max_drop must be a number >= 0, not {max_drop!r}")
        floor = (
            self.records.min_accuracy
            if max_drop is None
            else self.records.baseline_accuracy - float(max_drop)
        )
        pool = [
            r
            for r in self.records.trials
            if r.complete and r.reused_from is None and (r.accuracy or 0.0) >= floor
        ]
        if not pool:
            return None
        best = min(pool, key=lambda r: (r.energy_j_per_inference, -(r.accuracy or 0.0)))
        return self._row(best.number)

    def record(self, trial: TrialRef) -> TrialRecord:
        """The :class:`TrialRecord` of a trial (its number, record or row)."""
        number = _trial_number(trial)
        for r in self.records.trials:
            if r.number == number:
                return r
        numbers_ = [r.number for r in self.records.trials]
        span = f"{min(numbers_)}-{max(numbers_)}" if numbers_ else "none"
        raise ValueError(
            f"study '{self.records.study_name}' has no trial {number} (its trials: {span})"
        )

    # --- models ---------------------------------------------------------------------------

    @functools.cached_property
    def task(self) -> Task:
        """The recipe's task (base model and data), loaded on first use."""
        from compresslab.tasks import load_task

        return load_task(self.recipe.task)

    @functools.cached_property
    def bench(self) -> VariantBench:
        """The :class:`~compresslab.bench.VariantBench` every variant of this study is built on.

        The same one the search used: a rebuilt variant has the searched one's weights.
        """
        from compresslab.bench import VariantBench

        return VariantBench(recipe=self.recipe, task=self.task)

    def _spec(self, trial: TrialRef) -> tuple[VariantSpec, Runtime]:
        from compresslab.study import trial_variant

        return trial_variant(
            self.recipe, self.record(trial).number, storage=self.storage, base_dir=self.base_dir
        )

    def build(self, trial: TrialRef) -> nn.Module:
        """Build a trial's variant: the model that trial measured, in eval mode.

        Args:
            trial: a trial number, a :class:`TrialRecord`, or a row of :attr:`trials`
                (e.g. what :meth:`best` returns).

        Raises:
            ValueError: the study has no such trial.
            VariantError: the variant cannot be built here.
        """
        spec, _ = self._spec(trial)
        return self.bench.build(spec)

    def evaluate(self, model_or_trial: nn.Module | TrialRef) -> float:
        """The recipe's metric (e.g. accuracy) on the task's held-out split.

        Args:
            model_or_trial: a ``torch.nn.Module`` taking the task's inputs, or a trial (its
                variant is built first).
        """
        from torch import nn

        from compresslab.tasks.metrics import METRICS

        if isinstance(model_or_trial, nn.Module):
            model = model_or_trial
        else:
            model = self.build(model_or_trial)
        task = self.task
        # The task predicts (a causal task scores its choices), as the bench does.
        return METRICS[self.recipe.task.metric](task.predictions(model), task.eval_labels)

    def measure(
        self,
        model_or_trial: nn.Module | TrialRef | None = None,
        *,
        inputs: torch.Tensor | None = None,
        sampler: str | None = None,
    ) -> EnergyResult:
        """Measure energy per inference under the recipe's protocol (windows, CI, provenance).

        Args:
            model_or_trial: a ``torch.nn.Module``, a trial (its variant is built and run with
                the trial's threads and batch size), or ``None`` for the base model.
            inputs: the batch to run (default: the task's inference batch of the recipe's
                ``energy.batch_size``, or the trial's).
            sampler: override of the recipe's ``energy.sampler`` (``auto``, ``rapl``,
                ``nvml``, ``estimate``, ``model``).

        Returns:
            A :class:`compresslab.protocol.EnergyResult`; ``.to_dict()`` gives every figure.
            Its interval holds this machine's measured repeatability beside the windows'
            (``repeatability_source`` says where it came from, or that none is known yet).

        Raises:
            MeasurementError: the reading is implausible (the message says what to change).
        """
        from torch import nn

        from compresslab.bench import Runtime
        from compresslab.energy import select_sampler
        from compresslab.protocol import energy_options

        energy = self.recipe.energy
        runtime = Runtime()
        variant: str | None = None  # an arbitrary model is described from itself
        if model_or_trial is None:
            model, variant = self.task.model, "baseline"
        elif isinstance(model_or_trial, nn.Module):
            model = model_or_trial
        else:
            model = self.build(model_or_trial)
            spec, runtime = self._spec(model_or_trial)
            variant = spec.label()
        selection = select_sampler(
            sampler or energy.sampler, options=energy_options(energy), device=energy.device
        )
        log.info("measuring with %s", selection.explain())
        return self.bench.measure(
            model, runtime=runtime, inputs=inputs, selection=selection, variant=variant
        )

    def export(self, trial: TrialRef, path: str | Path, *, force: bool = False) -> Path:
        """Export a trial's variant as a reproducible artefact folder.

        ``compresslab.export.load_variant(path, task=study.task)`` rebuilds the same model.

        Args:
            trial: a trial number, a :class:`TrialRecord`, or a row of :attr:`trials`.
            path: the folder to write (created as a whole).
            force: replace an existing folder; export a screened-out or failed trial.

        Returns:
            The folder.

        Raises:
            VariantError: the reloaded artefact would not reproduce the variant's outputs.
        """
        from compresslab.export import ExportRequest
        from compresslab.study import export_trial

        return export_trial(
            ExportRequest(
                recipe=self.recipe,
                trial=self.record(trial).number,
                out_dir=Path(path),
                storage=self.storage,
                base_dir=self.base_dir,
                replace=force,
                allow_unmeasured=force,
            )
        )

    def confirm(self) -> Study:
        """Measure the frontier again, paired with the baseline, and return the updated study.

        The report's headline then states the confirmed ratio with its interval.
        """
        from compresslab import api

        with _process_state_kept():
            result = api.rebuild_report(
                self.recipe, storage=self.storage, base_dir=self.base_dir, confirm=True
            )
        return Study(self.recipe, result, base_dir=self.base_dir)

    def reload(self) -> Study:
        """The same study read again from its storage (trials added since included)."""
        return open(self.recipe, storage=self.storage, base_dir=self.base_dir)

    # --- pictures -------------------------------------------------------------------------

    def plot(self, *, ax: Axes | None = None) -> Axes:
        """Draw accuracy against kWh per 1000 inferences, the frontier highlighted.

        Every measured variant has its energy CI and accuracy (Wilson) interval as error bars
        and a marker by provenance; the frontier is a green step line with trial numbers, the
        baseline a red star, the tolerance an orange dashed line.

        Args:
            ax: the matplotlib axes to draw on (default: a new figure).

        Returns:
            The axes (``ax.figure`` is the figure).
        """
        if ax is None:
            import matplotlib.pyplot as plt

            _, ax = plt.subplots(figsize=(7.5, 5))
        draw_pareto(self.records, ax)
        return ax

    # --- summaries ------------------------------------------------------------------------

    def _row(self, number: int) -> pd.Series:
        df = self.trials
        row = df.loc[df["trial"] == number].iloc[0]
        row.name = number
        return row

    def _best_line(self) -> str | None:
        best = self.records.best_saving()
        base = self.records.baseline
        if best is None:
            return None
        ratio = ""
        if base is not None and best is not base and best.ratio_vs_baseline is not None:
            vs = best.confirmed or best.vs_baseline
            assert vs is not None
            what = "confirmed" if best.confirmed else "paired, in the search"
            ratio = (
                f", {vs.ratio:.2f}x the baseline's energy ({what}; 95% CI "
                f"{vs.ci95_low:.2f} to {vs.ci95_high:.2f})"
            )
            if vs.ci95_high >= 1:
                ratio += " (the interval reaches 1: not a clear saving)"
        return (
            f"trial {best.number} {best.variant}: accuracy {_fmt(best.accuracy)}, "
            f"{_fmt(best.energy_j_per_inference)} J/inference ({best.provenance}){ratio}"
        )

    def __repr__(self) -> str:
        best = self._best_line()
        return (
            f"<Study {self.name!r}: {self.records.counts()}; {len(self.records.frontier)} on the "
            f"frontier; best: {best or 'none within the tolerance'}>"
        )

    def _repr_html_(self) -> str:
        res = self.records
        e = html.escape
        base = res.baseline
        about = f": {e(self.recipe.description)}" if self.recipe.description else ""
        lines = [f"<b>Study {e(self.name)}</b>{about}"]
        lines.append(e(self.records.counts()) + f"; storage <code>{e(res.storage)}</code>")
        if base is not None:
            ci = base.ci95_j_per_inference
            lines.append(
                f"baseline: {e(res.info.get('metric', 'accuracy'))} {_fmt(base.accuracy)}, "
                f"{_fmt(base.energy_j_per_inference)} &plusmn; {_fmt(ci)} J/inference "
                f"({e(base.provenance)})"
            )
        lines.append(f"tolerance: {e(res.tolerance)} (minimum {_fmt(res.min_accuracy)})")
        best = self._best_line()
        lines.append("best within the tolerance: " + (e(best) if best else "none"))
        front = self.frontier
        table = (
            _in_units(front[_SUMMARY_COLUMNS]).to_html(
                index=False, escape=True, float_format=_fmt, na_rep="-", border=0
            )
            if len(front)
            else "<p>No feasible variant yet.</p>"
        )
        return "<div>" + "<br>".join(lines) + "<br>Frontier:" + table + "</div>"


def _in_units(frame: pd.DataFrame) -> pd.DataFrame:
    """Energy columns in one SI prefix (as the report's tables), size in MB, for reading."""
    from compresslab import units

    factor, unit = units.energy_unit(list(frame["energy_j_per_inference"]))
    out = frame.copy()
    out["energy_j_per_inference"] = out["energy_j_per_inference"] * factor
    out["ci95_j_per_inference"] = out["ci95_j_per_inference"] * factor
    out["size_bytes"] = out["size_bytes"] / 1e6
    return out.rename(
        columns={
            "energy_j_per_inference": f"energy / inference [{unit}]",
            "ci95_j_per_inference": f"95% CI [{unit}]",
            "energy_ratio_vs_baseline": "vs baseline (paired)",
            "size_bytes": "size [MB]",
        }
    )


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else html.escape(str(value))


def _trial_number(trial: Any) -> int:
    if isinstance(trial, TrialRecord):
        return trial.number
    if isinstance(trial, numbers.Integral) and not isinstance(trial, bool):
        return int(trial)
    with contextlib.suppress(TypeError, KeyError, IndexError):
        if "trial" in trial:
            return int(trial["trial"])
    raise TypeError(
        f"a trial is named by its number, its TrialRecord or a row of Study.trials, "
        f"not {type(trial).__name__}"
    )


@contextlib.contextmanager
def _process_state_kept() -> Iterator[None]:
    """Silence tqdm's import-time widget warning.

    ``import optuna`` imports ``tqdm.auto``, which warns in a notebook without ipywidgets about
    a progress bar nobody asked for. (Reports draw on bare matplotlib Figures, so a search never
    changes the notebook's matplotlib backend.)
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found")
        yield
