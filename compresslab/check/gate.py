"""Running the gate: build the candidate, get the reference, measure both paired, decide."""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compresslab.bench import Runtime, VariantBench
from compresslab.check import program
from compresslab.check.baseline import (
    GateInputError,
    Snapshot,
    now,
    read_baseline,
    reference_path,
    write_baseline,
)
from compresslab.check.verdict import (
    EnergyCheck,
    Measurement,
    Verdict,
    accuracy_check,
    classify,
    combine,
    modeled_check,
    ratio_interval,
)
from compresslab.compress import VariantSpec
from compresslab.protocol.hostlock import host_lock
from compresslab.recipe import Recipe

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)

_KIND_NAMES = {
    "export": "torch.export programs",
    "jit": "TorchScript traces (torch.export could not capture the model)",
}


@dataclass
class Candidate:
    """The model under test, built from today's code, with its accuracy and modeled figure."""

    bench: VariantBench
    spec: VariantSpec
    runtime: Runtime
    model: nn.Module
    batch: torch.Tensor
    accuracy: float
    modeled_j_per_inference: float


def _candidate(
    recipe: Recipe, *, trial: int | None, storage: str | None, base_dir: Path | None
) -> Candidate:
    from compresslab.modeled.costs import modeled_j_per_inference
    from compresslab.modeled.ops import count_ops
    from compresslab.tasks import load_task

    spec, runtime = VariantSpec(), Runtime()
    if trial is not None:
        from compresslab.study import trial_variant

        spec, runtime = trial_variant(recipe, trial, storage=storage, base_dir=base_dir)
    task = load_task(recipe.task)
    if task.unit != "inference":
        raise GateInputError(
            f"`compresslab check` gates one forward pass of a classifier's batch, and task "
            f"'{recipe.task.name}' is measured per {task.unit}: its generation cannot be "
            "captured as one program, so the gate would measure the wrong work. Compare "
            "energy per generated token with `compresslab measure` on both revisions, or "
            "`benchmarks/llm.py` (paired), until the gate measures generation"
        )
    bench = VariantBench(recipe=recipe, task=task)
    # Building and evaluating share the host; a measurement excludes them (as in the bench).
    with host_lock(exclusive=False):
        model = bench.build(spec)
        accuracy, _ = bench.accuracy(model)
        batch = bench.inference_batch(runtime)
        modeled = modeled_j_per_inference(count_ops(model, batch), batch_size=int(batch.shape[0]))
    return Candidate(bench, spec, runtime, model, batch, accuracy, sum(modeled.values()))


def _capture(model: nn.Module, batch: torch.Tensor, kinds: tuple[str, ...]) -> program.Captured:
    try:
        return program.capture(model, batch, kinds=kinds)
    except RuntimeError as e:
        raise GateInputError(
            f"the model cannot be captured as a program ({e}). The gate compares programs so "
            "that an earlier commit's computation can be measured without its code; for a "
            "model that neither torch.export nor torch.jit.trace can capture, gate it against "
            "an exported variant instead (`compresslab export`, then `check --reference DIR`: "
            "both sides run eagerly with this code)"
        ) from e


def update_baseline(
    recipe: Recipe,
    *,
    baseline_path: Path,
    trial: int | None = None,
    storage: str | None = None,
    base_dir: Path | None = None,
) -> Snapshot:
    """Write the baseline file and its reference program (the model's computation) beside it.

    The model is also measured alone under the recipe's protocol, for the record (the gate
    never decides on that figure: it measures the program again, paired, in every check).

    Raises:
        GateInputError: the model can be captured neither by torch.export nor by tracing.
    """
    import torch

    from compresslab.machine import fingerprint
    from compresslab.recipe import recipe_hash, result_fields

    cand = _candidate(recipe, trial=trial, storage=storage, base_dir=base_dir)
    captured = _capture(cand.model, cand.batch, ("export", "jit"))
    energy = cand.bench.measure(cand.model, runtime=cand.runtime, inputs=cand.batch)
    snap = Snapshot(
        recipe=recipe.name,
        recipe_hash=recipe_hash(recipe),
        variant=cand.spec.label() + cand.runtime.label(),
        metric=recipe.task.metric,
        accuracy=float(cand.accuracy),
        sampler=energy.sampler,
        provenance=str(energy.provenance),
        energy_j_per_inference=energy.energy_j_per_inference,
        ci95_j_per_inference=energy.ci95_j_per_inference,
        window_j_per_inference=list(energy.window_j_per_inference),
        modeled_j_per_inference=cand.modeled_j_per_inference,
        batch_size=int(cand.batch.shape[0]),
        machine=fingerprint(),
        created=now(),
        recipe_fields=result_fields(recipe.model_dump(mode="json")),
        reference={"batch_size": int(cand.batch.shape[0]), "torch": torch.__version__},
    )
    return write_baseline(baseline_path, snap, captured)


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
    if baseline.recipe_fields is None:
        return text + (
            ": the baseline file predates stored recipe fields, so what changed is unknown; "
            "check that the comparison is meant, or recreate the baseline with --update"
        )
    changes = recipe_changes(baseline.recipe_fields, result_fields(recipe.model_dump(mode="json")))
    if not changes:
        return text + ": no field that decides measured results changed"
    shown = "; ".join(changes[:3]) + (f"; and {len(changes) - 3} more" if len(changes) > 3 else "")
    return text + f": changed {shown}. If the change is meant, recreate the baseline with --update"


@dataclass
class Reference:
    """The model the candidate is compared with, and how the candidate must be measured."""

    label: str
    model: nn.Module | None  # None: no reference model (a format-1 baseline)
    kind: str  # "export", "jit" or "eager"
    modeled_j_per_inference: float | None
    accuracy: float | None = None
    why_not: str | None = None


def _program_reference(path: Path, kind: str, *, batch_size: int, dynamic: bool) -> nn.Module:
    import torch

    try:
        runnable = program.load(path, kind)
    except Exception as e:  # a file from another torch version, or damaged
        raise GateInputError(
            f"cannot load the reference program {path} with torch {torch.__version__} "
            f"({type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}): make it "
            "again with the torch the gate runs (`check --update`), or use --reference-rev"
        ) from e
    return program.ProgramModule(runnable, kind=kind, batch_size=batch_size, dynamic_batch=dynamic)


def _from_baseline(path: Path, snap: Snapshot, warnings: list[str]) -> Reference:
    if snap.reference is None:
        return Reference(
            label=f"{path} (format {snap.format}: figures only)",
            model=None,
            kind="none",
            modeled_j_per_inference=snap.modeled_j_per_inference,
            accuracy=snap.accuracy,
            why_not=(
                f"the baseline {path} (format {snap.format}) carries no reference model, and a "
                "figure measured at another time is not compared with one measured now. "
                f"Recreate it: `compresslab check RECIPE --baseline {path} --update` writes the "
                "reference program beside it (commit both); or pass --reference DIR or "
                "--reference-rev REV"
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
    model = _program_reference(
        file, ref["kind"], batch_size=int(ref["batch_size"]), dynamic=bool(ref["dynamic_batch"])
    )
    return Reference(
        label=f"{file} (the baseline's program of {snap.variant}, made {snap.created or '?'})",
        model=model,
        kind=ref["kind"],
        modeled_j_per_inference=snap.modeled_j_per_inference,
    )


def _from_export(folder: Path, cand: Candidate) -> Reference:
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


def _from_revision(
    rev: str, cand: Candidate, recipe: Recipe, recipe_path: Path | None, workdir: Path
) -> Reference:
    from compresslab.check.revision import build_program

    built = build_program(
        rev,
        task=recipe.task.model_dump(mode="json", exclude_none=True),
        batch_size=recipe.energy.batch_size,
        workdir=workdir,
        recipe_path=recipe_path,
    )
    model = _program_reference(
        built.path, built.kind, batch_size=recipe.energy.batch_size, dynamic=built.dynamic_batch
    )
    return Reference(
        label=f"revision {rev} ({built.commit[:12]}) built with its code, from {built.task_from}",
        model=model,
        kind=built.kind,
        modeled_j_per_inference=built.modeled_j_per_inference,
    )


def _measure(
    cand: Candidate,
    candidate_model: nn.Module,
    reference: nn.Module,
    *,
    pairs: int,
    alpha: float,
    limit: float,
) -> Measurement:
    bench = cand.bench
    base = bench.protocol
    # A fixed number of pairs: the interval is decided on once, not after peeking.
    bench.protocol = dataclasses.replace(base, min_windows=pairs, max_windows=pairs)
    try:
        paired = bench.measure_paired(candidate_model, runtime=cand.runtime, reference=reference)
    finally:
        bench.protocol = base
    iv = ratio_interval(
        paired.candidate.window_j_per_inference,
        paired.reference.window_j_per_inference,
        alpha=alpha,
    )
    return Measurement(
        ratio=iv.ratio,
        low=iv.low,
        high=iv.high,
        pairs=iv.pairs,
        outcome=classify(iv, limit),
        candidate_j_per_inference=paired.candidate.energy_j_per_inference,
        reference_j_per_inference=paired.reference.energy_j_per_inference,
        contended=paired.candidate.contended or paired.reference.contended,
    )


def run_check(
    recipe: Recipe,
    *,
    baseline_path: Path | None = None,
    reference_dir: Path | None = None,
    reference_rev: str | None = None,
    recipe_path: Path | None = None,
    trial: int | None = None,
    storage: str | None = None,
    base_dir: Path | None = None,
    pairs: int | None = None,
) -> Verdict:
    """Gate the recipe's model (or ``trial``'s variant) against a reference measured now.

    Exactly one reference: the baseline file's program (``baseline_path``), an exported variant
    (``reference_dir``) or the model built at a git revision (``reference_rev``; the task comes
    from ``recipe_path`` as it was there, when given and present).

    Raises:
        GateInputError: no reference, or one that cannot be read, built or loaded (exit 2).
    """
    given = [x for x in (baseline_path, reference_dir, reference_rev) if x is not None]
    if len(given) != 1:
        raise GateInputError(
            "give the gate one reference: --baseline FILE (its committed program), --reference "
            "DIR (an exported variant) or --reference-rev REV (the model at a git revision)"
            + (f"; got {len(given)}" if given else "")
        )
    cfg = recipe.check
    pairs = pairs or cfg.pairs
    if pairs < 2:
        raise GateInputError("--pairs must be at least 2: an interval needs two pairs")
    snap = read_baseline(baseline_path) if baseline_path is not None else None  # fail fast
    warnings: list[str] = []
    if snap is not None and (w := recipe_warning(snap, recipe)):
        warnings.append(w)
    cand = _candidate(recipe, trial=trial, storage=storage, base_dir=base_dir)
    with tempfile.TemporaryDirectory(prefix="compresslab-check-") as tmp:
        if snap is not None:
            assert baseline_path is not None
            ref = _from_baseline(baseline_path, snap, warnings)
        elif reference_dir is not None:
            ref = _from_export(reference_dir, cand)
        else:
            assert reference_rev is not None
            ref = _from_revision(reference_rev, cand, recipe, recipe_path, Path(tmp))
        return _decide(cand, ref, recipe, pairs=pairs, warnings=warnings)


def _decide(
    cand: Candidate, ref: Reference, recipe: Recipe, *, pairs: int, warnings: list[str]
) -> Verdict:
    cfg = recipe.check
    limit = 1 + cfg.max_increase
    sampler = cand.bench.selection.sampler
    energy = EnergyCheck(
        outcome="not measured",
        limit=limit,
        level=1 - cfg.alpha,
        provenance=str(sampler.provenance),
        sampler=sampler.name,
    )
    measured_as = "-"
    if ref.model is not None:
        ref.accuracy = cand.bench.accuracy(ref.model)[0]
        if ref.kind == "eager":
            candidate_model = cand.model
            measured_as = "eager on both sides (the artefact is rebuilt with this code)"
        else:
            bs = int(cand.batch.shape[0])
            candidate_model = program.as_module(_capture(cand.model, cand.batch, (ref.kind,)), bs)
            measured_as = f"{_KIND_NAMES[ref.kind]} on both sides (the candidate captured now)"
        if str(sampler.provenance) == "modeled":
            energy.why_not = (
                "the recipe's sampler is the modeled tier, which counts layers and cannot see "
                "how fast they run; use `energy.sampler: auto` (estimate where no counter)"
            )
        else:
            kw: dict[str, Any] = {"alpha": cfg.alpha, "limit": limit}
            first = _measure(cand, candidate_model, ref.model, pairs=pairs, **kw)
            energy.measurements.append(first)
            if first.outcome == "inconclusive" and cfg.retry_pairs >= 2:
                # More pairs than the first time (twice as many when --pairs exceeds them).
                retry = cfg.retry_pairs if cfg.retry_pairs > pairs else 2 * pairs
                energy.measurements.append(
                    _measure(cand, candidate_model, ref.model, pairs=retry, **kw)
                )
            energy.outcome = energy.measurements[-1].outcome
            if any(m.contended for m in energy.measurements):
                warnings.append(
                    "other processes kept CPUs busy during the measurement (both sides alike: "
                    "the windows are interleaved)"
                )
    else:
        energy.why_not = ref.why_not
    modeled = modeled_check(
        ref.modeled_j_per_inference,
        cand.modeled_j_per_inference,
        max_increase=cfg.modeled_max_increase,
    )
    accuracy = accuracy_check(
        ref.accuracy, cand.accuracy, metric=recipe.task.metric, max_drop=cfg.max_accuracy_drop
    )
    return Verdict(
        recipe=recipe.name,
        outcome=combine(energy, modeled, accuracy),
        on_inconclusive=cfg.on_inconclusive,
        reference=ref.label,
        measured_as=measured_as,
        energy=energy,
        modeled=modeled,
        accuracy=accuracy,
        warnings=warnings,
    )
