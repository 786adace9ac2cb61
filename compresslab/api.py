"""The public Python API (re-exported from :mod:`compresslab`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from compresslab.errors import CompressLabError, UsageError
from compresslab.recipe import Recipe, RecipeSource, parse_recipe, read_source, storage_problem
from compresslab.recipe import source_from_text as _source_from_text
from compresslab.results import SearchResult, TrialRecord


def _validated(source: RecipeSource) -> Recipe:
    # The registries of methods and tasks import torch: loaded here, not with the package.
    from compresslab.compress import check_space
    from compresslab.tasks import check_task

    recipe = parse_recipe(source)
    problems = check_space(recipe.compression) + check_task(recipe.task)
    if problems:
        loc, message = problems[0]
        more = f" ({len(problems) - 1} more problem(s) after this one)" if len(problems) > 1 else ""
        raise source.error(loc, message + more)
    return recipe


def load_recipe(source: str | Path | Mapping[str, Any]) -> Recipe:
    """Load and fully validate a recipe from a YAML file path or a dict.

    Raises:
        RecipeError: the recipe is invalid; the message names the file, line, field and fix.
    """
    if isinstance(source, Mapping):
        import yaml

        return _validated(_source_from_text(yaml.safe_dump(dict(source)), path="<dict>"))
    return _validated(read_source(source))


def search(
    recipe: Recipe | str | Path,
    *,
    trials: int | None = None,
    storage: str | None = None,
    base_dir: Path | None = None,
    on_trial: Callable[[TrialRecord, int, int], None] | None = None,
    write_report: bool = True,
    fresh: bool = False,
) -> SearchResult:
    """Run (or resume) a recipe's search and write its report.

    A study is resumed only under the recipe it was created with, as far as the fields that
    decide results go (:data:`compresslab.recipe.RESULT_FIELDS`); ``search.trials``, names,
    storage, output and report settings may change.

    Args:
        recipe: a :class:`Recipe` or a path to its YAML.
        trials: number of completed trials to reach (default: the recipe's ``search.trials``).
        storage: Optuna storage URL (default: the recipe's, else SQLite under the report folder).
        base_dir: folder the recipe's relative ``output`` is resolved against.
        on_trial: progress callback ``(record, completed, target)``.
        write_report: write ``trials.csv``, ``pareto.png`` and ``report.md``.
        fresh: delete the recipe's study from its storage (every trial) and start over.

    Raises:
        RecipeError: the recipe is invalid, or (``RecipeChangedError``) its study was created
            under other values of a field that decides results; nothing was run.
    """
    from compresslab.report import write_report as _write
    from compresslab.study import run_search

    _check_storage(storage)
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    result = run_search(
        recipe, trials=trials, storage=storage, base_dir=base_dir, on_trial=on_trial, fresh=fresh
    )
    if write_report:
        _write(result, recipe.output_dir(base_dir))
    _raise_if_all_failed(result, recipe.output_dir(base_dir) / "report.md")
    return result


def _check_storage(storage: str | None) -> None:
    problem = storage_problem(storage) if storage is not None else None
    if problem:
        raise UsageError(f"--storage: {problem}; see docs/fleet.md")


def _raise_if_all_failed(result: SearchResult, report: Path) -> None:
    """A search where every trial failed has no result: say why, rather than succeed empty."""
    from collections import Counter

    failed = result.failed
    if not failed or any(t.evaluated for t in result.trials):
        return
    reason, n = Counter(t.error or "no reason recorded" for t in failed).most_common(1)[0]
    baseline = any(t.is_baseline for t in failed)
    raise CompressLabError(
        f"every trial failed ({len(failed)} of {len(result.trials)}), so there is no frontier; "
        f"the most common reason ({n} trials): {reason}. "
        + (
            "The uncompressed baseline failed too: the task or the energy measurement is at "
            "fault, not a compression method. "
            if baseline
            else ""
        )
        + f"Every trial's reason is in {report}"
    )


def rebuild_report(
    recipe: Recipe | str | Path,
    *,
    storage: str | None = None,
    base_dir: Path | None = None,
    confirm: bool = False,
) -> SearchResult:
    """Rebuild a recipe's report from its study storage alone.

    With ``confirm``, the frontier is first measured again paired with the baseline (the task
    is loaded and variants are rebuilt); without it no model is loaded or run.
    """
    from compresslab.report import write_report as _write
    from compresslab.study import confirm_study, load_result

    _check_storage(storage)
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    if confirm:
        result = confirm_study(recipe, storage=storage, base_dir=base_dir)
    else:
        result = load_result(recipe, storage=storage, base_dir=base_dir)
    _write(result, recipe.output_dir(base_dir))
    return result


def measure_model(
    model: Any,
    inputs: Any,
    *,
    sampler: str = "auto",
    device: str = "cpu",
    protocol: Any = None,
    threads: int | None = None,
) -> Any:
    """Measure energy per inference of ``model`` on the batch ``inputs`` (repeated windows).

    Args:
        model: a ``torch.nn.Module``.
        inputs: one input batch (a tensor); every row is one inference.
        sampler: ``auto``, ``rapl``, ``nvml``, ``estimate`` or ``model``.
        device: where the model runs (decides ``auto``'s order).
        protocol: a :class:`compresslab.protocol.Protocol` (default: its defaults).
        threads: torch intra-op threads during the measurement.

    Returns:
        A :class:`compresslab.protocol.EnergyResult` (mean, CI, provenance, windows, ...).
    """
    from compresslab.energy import select_sampler
    from compresslab.protocol import measure_model as _measure

    selection = select_sampler(sampler, device=device)
    return _measure(model, inputs, sampler=selection.sampler, protocol=protocol, threads=threads)


class BlockMeasurement:
    """The energy of one ``with compresslab.measure(...)`` block, filled in when it exits.

    One window gives no confidence interval: use :func:`measure_model` for repeated windows.
    """

    def __init__(self, *, sampler: str, selection: str, inferences: int) -> None:
        self.sampler = sampler
        self.selection = selection
        self.inferences = inferences
        self.reading: Any = None

    @property
    def energy_j(self) -> float:
        """Joules over the block (all components)."""
        if self.reading is None:
            raise RuntimeError("the block has not finished: read the figures after the `with`")
        return float(self.reading.energy_j)

    @property
    def energy_j_per_inference(self) -> float:
        """Joules per inference (``energy_j / inferences``)."""
        return self.energy_j / self.inferences

    @property
    def duration_s(self) -> float:
        """Wall time of the block."""
        return float(self.reading.duration_s)

    @property
    def provenance(self) -> str:
        """How the figure was obtained (the weakest component's label)."""
        return str(self.reading.provenance)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary with per-component provenance."""
        return {
            "sampler": self.sampler,
            "selection": self.selection,
            "energy_j": self.energy_j,
            "energy_j_per_inference": self.energy_j_per_inference,
            "inferences": self.inferences,
            "duration_s": self.duration_s,
            "provenance": self.provenance,
            "components": {
                c.component: {"energy_j": c.energy_j, "provenance": str(c.provenance)}
                for c in self.reading.components
            },
        }


@contextlib.contextmanager
def measure(
    *, sampler: str = "auto", inferences: int = 1, device: str = "cpu"
) -> Iterator[BlockMeasurement]:
    """Measure the energy of the code in a ``with`` block (one window).

    Example::

        with compresslab.measure(inferences=len(batch)) as m:
            model(batch)
        print(m.energy_j_per_inference, m.provenance)

    Raises:
        MeasurementError: the reading is implausible (e.g. the block was shorter than the
            counter's update period: run more work inside it).
    """
    from compresslab.energy import select_sampler
    from compresslab.errors import MeasurementError
    from compresslab.protocol import host_lock

    if sampler == "model":
        raise MeasurementError(
            "the modeled tier counts a model's calls and cannot measure a code block: "
            "use compresslab.measure_model(model, inputs, sampler='model')"
        )
    if inferences < 1:
        raise ValueError("inferences must be at least 1")
    selection = select_sampler(sampler, device=device)
    result = BlockMeasurement(
        sampler=selection.sampler.name, selection=selection.explain(), inferences=inferences
    )
    with host_lock():
        selection.sampler.start()
        try:
            yield result
        except BaseException:
            with contextlib.suppress(Exception):
                selection.sampler.stop()
            raise
        result.reading = selection.sampler.stop()


def measure_recipe(
    recipe: Recipe | str | Path,
    *,
    trial: int | None = None,
    storage: str | None = None,
    base_dir: Path | None = None,
) -> dict[str, Any]:
    """Measure a recipe's baseline model, or the variant of one trial of its study.

    Returns a JSON-able dict with at least ``energy_j_per_inference``, ``ci95_j_per_inference``,
    ``provenance``, ``sampler``, ``n_inferences`` and ``windows``.
    """
    from compresslab.study import measure_trial

    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    return measure_trial(recipe, trial=trial, storage=storage, base_dir=base_dir)


def export_trial(
    recipe: Recipe | str | Path,
    *,
    trial: int,
    out_dir: str | Path,
    storage: str | None = None,
    base_dir: Path | None = None,
    force: bool = False,
) -> Path:
    """Export trial ``trial``'s variant of a recipe's study as a reproducible artefact.

    ``compresslab.export.load_variant(out_dir, task=...)`` rebuilds it with the same outputs;
    it checks every file against the artefact's manifest first. ``force`` replaces an existing
    folder and exports a screened-out or failed trial.
    """
    from compresslab.study import export_trial as _export

    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    return _export(
        recipe, trial=trial, out_dir=Path(out_dir), storage=storage, base_dir=base_dir, force=force
    )


def energy_gate(
    recipe: Recipe | str | Path,
    *,
    baseline: str | Path | None = None,
    reference: str | Path | None = None,
    reference_rev: str | None = None,
    update: bool = False,
    trial: int | None = None,
    storage: str | None = None,
    base_dir: Path | None = None,
    pairs: int | None = None,
) -> Any:
    """The CI gate (``compresslab check``): the candidate against a reference measured now.

    Args:
        recipe: the recipe (its path lets ``reference_rev`` read the task as it was there).
        baseline: the baseline JSON; its program beside it is the reference. With ``update``,
            both are (re)written from the current model instead.
        reference: a ``compresslab export`` folder to compare with instead.
        reference_rev: a git revision whose code builds the reference instead.
        update: write the baseline (and its program) rather than gate.
        trial: gate this trial's variant of the recipe's study (default: the baseline model).
        storage: the study's storage URL (with ``trial``).
        base_dir: folder the recipe's relative ``output`` is resolved against.
        pairs: pairs of interleaved windows (default: ``check.pairs``).

    Returns:
        A :class:`compresslab.check.Verdict` (``exit_code``: 0 pass, 1 regression), or with
        ``update`` the :class:`compresslab.check.Snapshot` written.

    Raises:
        GateInputError: no reference or an unusable one (exit code 2).
    """
    from compresslab.check import GateInputError, run_check, update_baseline

    recipe_path = None if isinstance(recipe, Recipe) else Path(recipe)
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    if update:
        if baseline is None or reference is not None or reference_rev is not None:
            raise GateInputError("--update writes a baseline: give --baseline FILE, and only it")
        return update_baseline(
            recipe, baseline_path=Path(baseline), trial=trial, storage=storage, base_dir=base_dir
        )
    return run_check(
        recipe,
        baseline_path=Path(baseline) if baseline is not None else None,
        reference_dir=Path(reference) if reference is not None else None,
        reference_rev=reference_rev,
        recipe_path=recipe_path,
        trial=trial,
        storage=storage,
        base_dir=base_dir,
        pairs=pairs,
    )
