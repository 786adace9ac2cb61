"""The gate's reference: the baseline's program, an exported variant, or a git revision's model.

Also :func:`recipe_warning`, which says when a baseline was made under another recipe. torch
is imported inside the functions, as in :mod:`.candidate`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from compresslab.check.accuracy import Scored
from compresslab.check.baseline import GateInputError, Snapshot, how_to_create, reference_path

if TYPE_CHECKING:
    from torch import nn

    from compresslab.check.candidate import Candidate
    from compresslab.recipe import Recipe


@dataclass
class Reference:
    """The model the candidate is compared with, and how the candidate must be measured.

    ``scored`` is its accuracy (and per-example outcomes) when the baseline stores them; else
    the gate evaluates ``model`` now, and ``evaluated_as`` says so in the verdict.
    """

    label: str
    model: nn.Module | None  # None: no reference model (a format-1 baseline)
    kind: str  # "export", "jit" or "eager"
    modeled_j_per_inference: float | None
    scored: Scored | None = None
    why_not: str | None = None
    evaluated_as: str = "the reference model evaluated now"


def recipe_warning(baseline: Snapshot, recipe: Recipe) -> str | None:
    """Why the baseline's recipe is not this one (None when it is the same recipe)."""
    from compresslab.recipe import recipe_changes, recipe_hash, result_fields

    current = recipe_hash(recipe)
    if baseline.recipe_hash == current:
        return None
    text = (
        f"the baseline was made with another recipe (hash {baseline.recipe_hash}, this one "
        f"{current})"
    )
    again = "recreate the baseline with `compresslab baseline RECIPE --out FILE --force`"
    if baseline.recipe_fields is None:
        return text + (
            ": the baseline file predates stored recipe fields, so what changed is unknown; "
            f"check that the comparison is meant, or {again}"
        )
    changes = recipe_changes(baseline.recipe_fields, result_fields(recipe.model_dump(mode="json")))
    if not changes:
        return text + ": no field that decides measured results changed"
    shown = "; ".join(changes[:3]) + (f"; and {len(changes) - 3} more" if len(changes) > 3 else "")
    return text + f": changed {shown}. If the change is meant, {again}"


def recipe_change(baseline: Snapshot, recipe: Recipe) -> str | None:
    """What changed in the recipe's result-deciding fields since the baseline (None: nothing)."""
    from compresslab.recipe import recipe_changes, recipe_hash, result_fields

    if baseline.recipe_hash == recipe_hash(recipe):
        return None
    if baseline.recipe_fields is None:
        return "the recipe changed since the baseline (what changed is unknown: the baseline "
        "predates stored recipe fields)"
    changes = recipe_changes(baseline.recipe_fields, result_fields(recipe.model_dump(mode="json")))
    return f"the recipe changed since the baseline: {'; '.join(changes)}" if changes else None


def _program(path: Path, kind: str, *, batch_size: int, dynamic: bool) -> nn.Module:
    import torch

    from compresslab.check import program

    try:
        runnable = program.load(path, kind)
    except Exception as e:  # a file from another torch version, or damaged
        raise GateInputError(
            f"cannot load the reference program {path} with torch {torch.__version__} "
            f"({type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}): make it "
            "again with the torch the gate runs (`compresslab baseline`), or use --reference-rev"
        ) from e
    return program.ProgramModule(runnable, kind=kind, batch_size=batch_size, dynamic_batch=dynamic)


def from_baseline(path: Path, snap: Snapshot, warnings: list[str]) -> Reference:
    """The program committed beside the baseline (none for a format-1 baseline: said why)."""
    if snap.reference is None:
        return Reference(
            label=f"{path} (format {snap.format}: figures only)",
            model=None,
            kind="none",
            modeled_j_per_inference=snap.modeled_j_per_inference,
            scored=Scored(
                snap.accuracy,
                snap.stored_outcomes(),
                snap.accuracy_examples,
                source=f"the baseline {path}",
            ),
            why_not=(
                f"the baseline {path} (format {snap.format}) carries no reference model, and a "
                "figure measured at another time is not compared with one measured now: "
                f"{how_to_create(path, replace=True)} (it writes the reference program beside "
                "it; commit both); or pass --reference DIR or --reference-rev REV"
            ),
        )
    ref = snap.reference
    import torch

    if ref.get("torch") and ref["torch"] != torch.__version__:
        warnings.append(
            f"the reference program was made with torch {ref['torch']}, this is "
            f"{torch.__version__}: both sides still run on this torch, but pin the version the "
            "baseline was made with if loading fails"
        )
    file = reference_path(path, snap)
    model = _program(
        file, ref["kind"], batch_size=int(ref["batch_size"]), dynamic=bool(ref["dynamic_batch"])
    )
    outcomes = snap.stored_outcomes()
    if outcomes is None:
        warnings.append(
            f"the baseline {path} predates stored per-example outcomes: for the accuracy check "
            f"its program is evaluated now; {how_to_create(path, replace=True)} to store them"
        )
    return Reference(
        label=f"{file} (the baseline's program of {snap.variant}, made {snap.created or '?'})",
        model=model,
        kind=ref["kind"],
        modeled_j_per_inference=snap.modeled_j_per_inference,
        scored=None
        if outcomes is None
        else Scored(snap.accuracy, outcomes, outcomes.n, source="outcomes stored in the baseline"),
        evaluated_as="the baseline's program evaluated now",
    )


def from_export(folder: Path, cand: Candidate) -> Reference:
    """An exported variant, rebuilt with today's code (both sides then run eagerly)."""
    from compresslab.errors import VariantError
    from compresslab.export import load_variant
    from compresslab.modeled.costs import modeled_j_per_inference
    from compresslab.modeled.ops import count_ops

    try:
        model = load_variant(folder, task=cand.bench.task)
    except VariantError as e:
        raise GateInputError(f"--reference {folder}: {e}") from e
    batch = cand.bench.inference_batch()
    modeled = modeled_j_per_inference(count_ops(model, batch), batch_size=int(batch.shape[0]))
    return Reference(
        label=f"{folder} (an exported variant, rebuilt with this code)",
        model=model,
        kind="eager",
        modeled_j_per_inference=sum(modeled.values()),
    )


def from_revision(rev: str, recipe: Recipe, recipe_path: Path | None, workdir: Path) -> Reference:
    """The model as revision ``rev``'s code builds it, in a worktree under ``workdir``."""
    from compresslab.check.revision import build_program

    built = build_program(
        rev,
        task=recipe.task.model_dump(mode="json", exclude_none=True),
        batch_size=recipe.energy.batch_size,
        workdir=workdir,
        recipe_path=recipe_path,
    )
    model = _program(
        built.path, built.kind, batch_size=recipe.energy.batch_size, dynamic=built.dynamic_batch
    )
    return Reference(
        label=f"revision {rev} ({built.commit[:12]}) built with its code, from {built.task_from}",
        model=model,
        kind=built.kind,
        modeled_j_per_inference=built.modeled_j_per_inference,
    )
