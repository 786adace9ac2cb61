"""The one measurement function: a torch model on a batch, or a recipe's baseline or variant.

Whatever it measures, :func:`measure` returns a :class:`~compresslab.records.Measurement`:
its ``energy`` always, the ``evaluation`` too for a recipe. A block of code has its own
context manager, :func:`compresslab.measure_block` (one window, no interval).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compresslab._front._inputs import RecipeLike, check_storage, load_recipe
from compresslab.errors import InvalidArgumentError
from compresslab.recipe import Recipe
from compresslab.records import Measurement

if TYPE_CHECKING:
    import torch
    from torch import nn

    from compresslab.protocol import Protocol


def measure(
    target: nn.Module | RecipeLike,
    inputs: torch.Tensor | None = None,
    *,
    trial: int | None = None,
    sampler: str | None = None,
    device: str | None = None,
    protocol: Protocol | None = None,
    threads: int | None = None,
    repeatability: bool = True,
    storage: str | None = None,
    base_dir: Path | None = None,
) -> Measurement:
    """Measure energy per inference under the protocol: repeated windows, a 95% interval.

    Two kinds of target, each with its own arguments:

    - a ``torch.nn.Module`` with ``inputs``, one batch (each row one inference), measured as
      given; ``sampler``, ``device``, ``protocol``, ``threads`` and ``repeatability`` apply.
    - a recipe (a path to its YAML, a mapping or a :class:`Recipe`): its baseline model, or
      with ``trial`` that trial's variant of its study (in ``storage``, else the recipe's),
      evaluated and measured paired with the baseline, with the recipe's energy settings (what
      ``compresslab measure`` runs; the measurement joins the recipe's run history).

    Args:
        target: the model, or the recipe.
        inputs: the model's batch (a model only).
        trial: the trial whose variant to measure (a recipe only; default: the baseline).
        sampler: ``auto`` (the default), ``rapl``, ``nvml``, ``estimate`` or ``model``.
        device: where the model runs, ``cpu`` (the default) or ``cuda[:N]``; it decides
            ``auto``'s order.
        protocol: a :class:`compresslab.protocol.Protocol` (default: its defaults).
        threads: torch intra-op threads during the measurement (default: as set).
        repeatability: widen the interval by this machine's measured repeatability between
            measurements and add the figure to this model's history; False: the windows'
            interval alone, nothing recorded (a model only: a recipe's always states it).
        storage: the study's storage URL (a recipe with ``trial``).
        base_dir: folder the recipe's relative ``output`` is resolved against.

    Returns:
        A :class:`~compresslab.records.Measurement`: ``energy`` (an ``EnergyResult``: mean,
        interval, provenance, windows; ``repeatability_source`` says how the interval was
        made), and for a recipe its ``evaluation`` (the metric, the paired ratio of a
        variant, profile ...). ``to_json()`` is what ``compresslab measure --json`` prints.

    Raises:
        InvalidArgumentError: an argument that does not apply to the target, or a model
            without ``inputs``.
        RecipeError: the recipe is invalid.
        MeasurementError: the reading is implausible (the message says what to change).
    """
    from torch import nn

    if isinstance(target, nn.Module):
        return _measure_model(
            target,
            inputs,
            sampler=sampler,
            device=device,
            protocol=protocol,
            threads=threads,
            repeatability=repeatability,
            recipe_only={"trial": trial, "storage": storage, "base_dir": base_dir},
        )
    if not isinstance(target, Recipe | Mapping | str | os.PathLike):
        raise TypeError(
            "measure takes a torch model (with its inputs) or a recipe (a path to its YAML, a "
            f"mapping or a Recipe), not {type(target).__name__}"
        )
    model_only: dict[str, Any] = {"inputs": inputs, "sampler": sampler, "device": device}
    model_only |= {"protocol": protocol, "threads": threads}
    model_only["repeatability"] = None if repeatability else False
    _refuse(model_only, _MODEL_ONLY)
    return _measure_recipe(target, trial=trial, storage=storage, base_dir=base_dir)


_MODEL_ONLY = (
    "a model: a recipe's model is measured on its task's batch with the recipe's energy "
    "settings (set them in its energy section)"
)
_RECIPE_ONLY = "a recipe: a model is measured on the inputs given"


def _refuse(given: dict[str, Any], what: str) -> None:
    """An :class:`InvalidArgumentError` for the first of ``given`` set that does not apply."""
    for name, value in given.items():
        if value is not None:
            raise InvalidArgumentError(f"{name} is for measuring {what}", argument=name)


def _measure_model(
    model: nn.Module,
    inputs: torch.Tensor | None,
    *,
    sampler: str | None,
    device: str | None,
    protocol: Protocol | None,
    threads: int | None,
    repeatability: bool,
    recipe_only: dict[str, Any],
) -> Measurement:
    from compresslab.energy import select_sampler
    from compresslab.protocol import measure_model
    from compresslab.protocol.repeatability import model_key, standalone

    _refuse(recipe_only, _RECIPE_ONLY)
    if inputs is None:
        raise InvalidArgumentError(
            "inputs is needed to measure a model: give one batch (a tensor), each row one "
            "inference",
            argument="inputs",
        )
    selection = select_sampler(sampler or "auto", device=device or "cpu")
    energy = measure_model(
        model, inputs, sampler=selection.sampler, protocol=protocol, threads=threads
    )
    if repeatability:
        key, label = model_key(model, inputs, threads)
        energy = standalone(energy, key=key, label=label)
    return Measurement(energy=energy, selection=selection.explain())


def _measure_recipe(
    recipe: RecipeLike, *, trial: int | None, storage: str | None, base_dir: Path | None
) -> Measurement:
    from compresslab.study import measure_trial

    check_storage(storage)
    rec = load_recipe(recipe)
    result = measure_trial(rec, trial=trial, storage=storage, base_dir=base_dir)
    _record_measurement(rec, result, base_dir=base_dir)
    return result


def _record_measurement(recipe: Recipe, result: Measurement, *, base_dir: Path | None) -> None:
    """One history line for a recipe's measurement."""
    from compresslab import history
    from compresslab.records import to_json

    ev = result.evaluation
    energy = result.energy
    n = energy.n_inferences
    history.record(
        recipe,
        command="measure",
        variant=result.variant or "baseline",
        energy_j=energy.energy_j_per_inference * n,
        duration_s=energy.duration_s,
        provenance=str(energy.provenance),
        ci95_j=energy.ci95_j_per_inference * n,
        components_j={k: v * n for k, v in energy.components_j_per_inference.items()},
        figures={
            "energy_j_per_inference": energy.energy_j_per_inference,
            "ci95_j_per_inference": energy.ci95_j_per_inference,
            "sampler": energy.sampler,
            "windows": energy.windows,
            "trial": result.trial,
            "vs_baseline": to_json(ev.vs_baseline) if ev is not None else None,
            recipe.task.metric: ev.metric if ev is not None else None,
            "ci_target_met": energy.ci_target_met,
            "systematic_rel": energy.systematic_rel,
            "contended": energy.contended,
        },
        base_dir=base_dir,
    )
