"""The :class:`Study`: a search's result with its recipe, as tables, plots and models.

Every public function that runs, opens or reports a study returns one
(:func:`compresslab.search`, :func:`compresslab.open`, :func:`compresslab.rebuild_report`).
``study.result`` is the :class:`~compresslab.records.SearchResult` the command line prints;
``study.trials`` and ``study.frontier`` are the same trials as pandas DataFrames; a trial's
variant can be built, evaluated, measured again and exported. In Jupyter a study shows itself
as a summary with the frontier table. Nothing here prints.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import numbers
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from compresslab._front._summary import summary_html, summary_text
from compresslab.errors import InvalidArgumentError
from compresslab.recipe import Recipe
from compresslab.records import Measurement, SearchResult, TrialRecord
from compresslab.report.plot import draw_pareto

if TYPE_CHECKING:
    import pandas as pd
    import torch
    from matplotlib.axes import Axes
    from torch import nn

    from compresslab.bench import Runtime, VariantBench
    from compresslab.compress import VariantSpec
    from compresslab.tasks import Task

    #: What names a trial: its number, its :class:`TrialRecord`, or a row of ``Study.trials``
    #: (anything with a ``"trial"`` key, such as what :meth:`Study.best` returns).
    TrialRef: TypeAlias = int | TrialRecord | pd.Series | Mapping[str, Any]

__all__ = ["Study"]

log = logging.getLogger(__name__)


class Study:
    """A recipe and its search result: what every function that runs or opens a study returns.

    The trials are a snapshot taken when the study was searched or opened: :meth:`reload`
    reads the storage again. ``trials`` and ``frontier`` are pandas DataFrames with the
    columns of ``trials.csv``; ``result`` is the underlying :class:`SearchResult`.

    Attributes:
        recipe: the validated recipe.
        result: the search result (plain :class:`TrialRecord` objects, the frontier): what
            ``compresslab search`` prints.
        base_dir: folder the recipe's relative paths are resolved against.
    """

    def __init__(
        self, recipe: Recipe, result: SearchResult, *, base_dir: Path | None = None
    ) -> None:
        self.recipe = recipe
        self.result = result
        self.base_dir = base_dir

    @property
    def records(self) -> SearchResult:
        """The same as :attr:`result` (its name in releases before 0.3)."""
        return self.result

    # --- the tables ---------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The recipe's name."""
        return self.recipe.name

    @property
    def storage(self) -> str:
        """The Optuna storage URL of the study."""
        return self.result.storage

    @property
    def output_dir(self) -> Path:
        """Where the report files are written (``<output>/<name>/``)."""
        return self.recipe.output_dir(self.base_dir)

    @functools.cached_property
    def trials(self) -> pd.DataFrame:
        """One row per trial (the columns of ``trials.csv``, then ``param.*``)."""
        from compresslab.report.table import trials_frame

        return trials_frame(self.result)

    @functools.cached_property
    def frontier(self) -> pd.DataFrame:
        """The feasible Pareto frontier, cheapest first (rows of :attr:`trials`)."""
        from compresslab.report.table import frontier_frame

        return frontier_frame(self.result)

    @property
    def baseline(self) -> pd.Series | None:
        """The uncompressed model's row of :attr:`trials` (``None`` if it did not complete)."""
        base = self.result.baseline
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
            raise InvalidArgumentError(
                f"max_drop must be a number >= 0, got {max_drop!r}", argument="max_drop"
            )
        floor = (
            self.result.min_accuracy
            if max_drop is None
            else self.result.baseline_accuracy - float(max_drop)
        )
        pool = [
            r
            for r in self.result.trials
            if r.complete and r.reused_from is None and (r.accuracy or 0.0) >= floor
        ]
        if not pool:
            return None
        best = min(pool, key=lambda r: (r.energy_j_per_inference, -(r.accuracy or 0.0)))
        return self._row(best.number)

    def record(self, trial: TrialRef) -> TrialRecord:
        """The :class:`TrialRecord` of a trial (its number, record or row)."""
        number = _trial_number(trial)
        for r in self.result.trials:
            if r.number == number:
                return r
        numbers_ = [r.number for r in self.result.trials]
        span = f"{min(numbers_)}-{max(numbers_)}" if numbers_ else "none"
        raise InvalidArgumentError(
            f"trial {number} is not in study '{self.result.study_name}' (its trials: {span})",
            argument="trial",
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
            InvalidArgumentError: the study has no such trial.
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
    ) -> Measurement:
        """Measure energy per inference under the recipe's protocol (windows, CI, provenance).

        The energy alone (nothing is evaluated, no pairs with the baseline):
        :func:`compresslab.measure` with the recipe and a trial evaluates and pairs too.

        Args:
            model_or_trial: a ``torch.nn.Module``, a trial (its variant is built and run with
                the trial's threads and batch size), or ``None`` for the base model.
            inputs: the batch to run (default: the task's inference batch of the recipe's
                ``energy.batch_size``, or the trial's).
            sampler: override of the recipe's ``energy.sampler`` (``auto``, ``rapl``,
                ``nvml``, ``estimate``, ``model``).

        Returns:
            A :class:`~compresslab.records.Measurement` without an evaluation: its ``energy``
            (``.to_dict()`` gives every figure) has an interval that holds this machine's
            measured repeatability beside the windows' (``repeatability_source`` says where it
            came from, or that none is known yet).

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
        trial: int | None = None
        if model_or_trial is None:
            model, variant = self.task.model, "baseline"
        elif isinstance(model_or_trial, nn.Module):
            model = model_or_trial
        else:
            trial = self.record(model_or_trial).number
            model = self.build(trial)
            spec, runtime = self._spec(trial)
            variant = spec.label()
        selection = select_sampler(
            sampler or energy.sampler, options=energy_options(energy), device=energy.device
        )
        log.info("measuring with %s", selection.explain())
        result = self.bench.measure(
            model, runtime=runtime, inputs=inputs, selection=selection, variant=variant
        )
        return Measurement(
            energy=result,
            selection=selection.explain(),
            recipe=self.name,
            variant=variant,
            trial=trial,
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
        from compresslab.report import write_report
        from compresslab.study import confirm_study

        with _process_state_kept():
            result = confirm_study(self.recipe, storage=self.storage, base_dir=self.base_dir)
            write_report(result, self.output_dir)
        return Study(self.recipe, result, base_dir=self.base_dir)

    def reload(self) -> Study:
        """The same study read again from its storage (trials added since included)."""
        from compresslab.study import load_result

        with _process_state_kept():
            result = load_result(self.recipe, storage=self.storage, base_dir=self.base_dir)
        return Study(self.recipe, result, base_dir=self.base_dir)

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
        draw_pareto(self.result, ax)
        return ax

    # --- summaries ------------------------------------------------------------------------

    def _row(self, number: int) -> pd.Series:
        df = self.trials
        row = df.loc[df["trial"] == number].iloc[0]
        row.name = number
        return row

    def __repr__(self) -> str:
        return summary_text(self.name, self.result)

    def _repr_html_(self) -> str:
        return summary_html(self.recipe, self.result, self.frontier)


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
