"""The functions the command line calls, each returning the plain record it prints.

Python code uses the names of :mod:`compresslab` (``compresslab.search`` returns a
:class:`~compresslab.Study`; see docs/api.md). This module keeps the command line's own:
:func:`search` and :func:`rebuild_report` return the :class:`~compresslab.records.SearchResult`
(``search`` takes the command line's progress callback); :func:`load_recipe`,
:func:`compare`, :func:`measure`, :func:`export_trial`, :func:`energy_gate` and
:func:`update_baseline` are the public
functions themselves. ``measure_model`` and ``measure_recipe`` are deprecated aliases of
:func:`measure`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compresslab._front import compare, load_recipe, measure
from compresslab._front import report_result as rebuild_report
from compresslab._front import search_result as search
from compresslab.recipe import Recipe

if TYPE_CHECKING:
    from compresslab.check import BaselineRequest, GateRequest, Snapshot, Verdict
    from compresslab.export import ExportRequest
    from compresslab.records import EnergyResult, Measurement

__all__ = [
    "compare",
    "energy_gate",
    "update_baseline",
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


def _loaded(recipe: Recipe | str | Path | Mapping[str, Any]) -> Recipe:
    """A request's recipe, loaded and checked (a :class:`Recipe` as it is)."""
    return recipe if isinstance(recipe, Recipe) else load_recipe(recipe)


def export_trial(request: ExportRequest) -> Path:
    """Export a trial's variant of a recipe's study as a reproducible artefact.

    What ``compresslab export`` runs. ``compresslab.export.load_variant(request.out_dir,
    task=...)`` rebuilds it with the same outputs; it checks every file against the artefact's
    manifest first.

    Args:
        request: the recipe, the trial, the folder and what may be replaced or exported
            (:class:`compresslab.export.ExportRequest`).

    Returns:
        The folder written.

    Raises:
        UsageError: the folder exists and ``request.replace`` is not set, or the trial was not
            measured (screened out, failed) and ``request.allow_unmeasured`` is not set.
        VariantError: the reloaded artefact would not reproduce the variant's outputs.
    """
    from compresslab.study import export_trial as _export

    return _export(request.with_recipe(_loaded(request.recipe)))


def energy_gate(request: GateRequest) -> Verdict:
    """The CI gate (``compresslab check``): the candidate against a reference measured now.

    Args:
        request: the recipe, exactly one reference (a baseline file, an exported variant or a
            git revision), the trial and the pairs (:class:`compresslab.check.GateRequest`).

    Returns:
        The :class:`compresslab.check.Verdict` (``exit_code``: 0 pass, 1 regression;
        ``to_dict()``, ``markdown()``).

    Raises:
        GateInputError: an unusable reference, e.g. a missing or corrupt baseline (exit code 2).
    """
    from compresslab.check import run_check

    return run_check(request.with_recipe(_loaded(request.recipe)))


def update_baseline(request: BaselineRequest) -> Snapshot:
    """Write the gate's baseline (``compresslab baseline``): the model's figures and its program.

    Args:
        request: the recipe, the baseline file to write, the trial, and whether an existing
            baseline may be replaced (:class:`compresslab.check.BaselineRequest`).

    Returns:
        The :class:`compresslab.check.Snapshot` written (its ``reference`` names the program).

    Raises:
        GateInputError: the file exists and ``request.replace`` is not set, or the model can be
            captured neither by torch.export nor by tracing (exit code 2).
    """
    from compresslab.check import update_baseline as _update

    return _update(request.with_recipe(_loaded(request.recipe)))
