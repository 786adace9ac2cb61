"""The functions the command line calls, each returning the plain record it prints.

Python code uses the names of :mod:`compresslab` (``compresslab.search`` returns a
:class:`~compresslab.Study`; see docs/api.md). This module keeps the command line's own:
:func:`search` and :func:`rebuild_report` return the :class:`~compresslab.records.SearchResult`
(``search`` takes the command line's progress callback); :func:`load_recipe`,
:func:`compare`, :func:`measure`, :func:`export_trial` and :func:`energy_gate` are the public
functions themselves. ``measure_model`` and ``measure_recipe`` are deprecated aliases of
:func:`measure`.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compresslab._front import compare, load_recipe, measure
from compresslab._front import report_result as rebuild_report
from compresslab._front import search_result as search
from compresslab.recipe import Recipe

if TYPE_CHECKING:
    from compresslab.records import EnergyResult, Measurement

__all__ = [
    "compare",
    "energy_gate",
    "export_trial",
    "load_recipe",
    "measure",
    "measure_model",
    "measure_recipe",
    "rebuild_report",
    "search",
]


def measure_model(model: Any, inputs: Any, **options: Any) -> EnergyResult:
    """Deprecated: ``compresslab.measure(model, inputs, ...).energy`` (the same options)."""
    warnings.warn(
        "compresslab.measure_model is deprecated: use compresslab.measure(model, inputs, ...), "
        "whose .energy is what measure_model returned",
        DeprecationWarning,
        stacklevel=2,
    )
    return measure(model, inputs, **options).energy


def measure_recipe(
    recipe: Recipe | str | Path,
    *,
    trial: int | None = None,
    storage: str | None = None,
    base_dir: Path | None = None,
) -> Measurement:
    """Deprecated: ``compresslab.measure(recipe, trial=..., storage=...)``, the same result."""
    warnings.warn(
        "compresslab.measure_recipe is deprecated: use compresslab.measure(recipe, trial=...), "
        "which returns the same Measurement",
        DeprecationWarning,
        stacklevel=2,
    )
    return measure(recipe, trial=trial, storage=storage, base_dir=base_dir)


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
