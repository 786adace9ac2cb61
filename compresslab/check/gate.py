"""Running the gate: build the candidate, get the reference, measure both paired, decide.

:func:`run_check` takes a :class:`~compresslab.check.request.GateRequest` and returns a
:class:`~compresslab.check.verdict.Verdict`; :func:`update_baseline` takes a
:class:`~compresslab.check.request.BaselineRequest` and returns the
:class:`~compresslab.check.baseline.Snapshot` it wrote. torch and the bench are imported inside
the functions, so that ``import compresslab.check`` stays light.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compresslab.check.accuracy import AccuracyCheck, Scored, accuracy_check
from compresslab.check.baseline import (
    GateInputError,
    Snapshot,
    how_to_create,
    now,
    read_baseline,
    write_baseline,
)
from compresslab.check.candidate import Candidate, build_candidate, capture
from compresslab.check.reference import (
    Reference,
    from_baseline,
    from_export,
    from_revision,
    recipe_change,
    recipe_warning,
)
from compresslab.check.verdict import (
    EnergyCheck,
    Measurement,
    Verdict,
    classify,
    combine,
    modeled_check,
    ratio_interval,
)

if TYPE_CHECKING:
    from torch import nn

    from compresslab.check.request import BaselineRequest, GateRequest
    from compresslab.recipe import Recipe

log = logging.getLogger(__name__)

_KIND_NAMES = {
    "export": "torch.export programs",
    "jit": "TorchScript traces (torch.export could not capture the model)",
}


def update_baseline(request: BaselineRequest) -> Snapshot:
    """Write the baseline file and its reference program (the model's computation) beside it.

    The model is also measured alone under the recipe's protocol, for the record (the gate
    never decides on that figure: it measures the program again, paired, in every check).
    Its per-example outcomes on the held-out split are stored: the gate's accuracy check pairs
    the candidate's with them.

    Raises:
        GateInputError: the baseline exists and ``request.replace`` is not set, or the model
            can be captured neither by torch.export nor by tracing.
    """
    import torch

    from compresslab.machine import fingerprint
    from compresslab.recipe import recipe_hash, result_fields
    from compresslab.records import to_json

    recipe = request.loaded_recipe
    if request.baseline.exists() and not request.replace:
        raise GateInputError(
            f"{request.baseline} exists: pass --force (replace=True) to replace it and its "
            "program, or choose another file"
        )
    cand = build_candidate(
        recipe, trial=request.trial, storage=request.storage, base_dir=request.base_dir
    )
    captured = capture(cand.model, cand.batch, ("export", "jit"))
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
        outcomes=to_json(cand.outcomes),
        accuracy_examples=cand.outcomes.n,
    )
    return write_baseline(request.baseline, snap, captured)


def run_check(request: GateRequest) -> Verdict:
    """Gate the recipe's model (or the request's trial's variant) against a reference measured now.

    The request names exactly one reference: the baseline file's program, an exported variant
    or the model built at a git revision (the task then comes from the recipe file as it was
    there, when the request knows the file and it is present at that revision).

    Raises:
        GateInputError: a reference that cannot be read, built or loaded (exit code 2).
    """
    recipe = request.loaded_recipe
    pairs = request.n_pairs
    snap = read_baseline(request.baseline) if request.baseline is not None else None  # fail fast
    warnings: list[str] = []
    unpaired_fix = "evaluate both sides on the same examples"
    if snap is not None and request.baseline is not None:
        w = recipe_warning(snap, recipe)
        warnings += [w] if w else []
        unpaired_fix = _remake(request.baseline, recipe_change(snap, recipe))
    cand = build_candidate(
        recipe, trial=request.trial, storage=request.storage, base_dir=request.base_dir
    )
    with tempfile.TemporaryDirectory(prefix="compresslab-check-") as tmp:
        if snap is not None and request.baseline is not None:
            ref = from_baseline(request.baseline, snap, warnings)
        elif request.reference_dir is not None:
            ref = from_export(request.reference_dir, cand)
        else:
            assert request.reference_rev is not None  # GateRequest holds exactly one
            ref = from_revision(request.reference_rev, recipe, request.recipe_path, Path(tmp))
        return _decide(cand, ref, recipe, pairs=pairs, warnings=warnings, unpaired_fix=unpaired_fix)


def _remake(baseline: Path, changed: str | None) -> str:
    """Why the baseline's outcomes are not on today's examples, and what to do."""
    why = changed or "the task's code or data changed since the baseline (its recipe did not)"
    return f"{why}. If the change is meant, {how_to_create(baseline, replace=True)}"


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


def _measure_energy(
    cand: Candidate,
    ref: Reference,
    recipe: Recipe,
    energy: EnergyCheck,
    *,
    pairs: int,
    warnings: list[str],
) -> str:
    """Measure both sides paired into ``energy`` (once more when inconclusive); how, in words."""
    from compresslab.check import program

    assert ref.model is not None
    cfg = recipe.check
    if ref.kind == "eager":
        candidate_model = cand.model
        measured_as = "eager on both sides (the artefact is rebuilt with this code)"
    else:
        bs = int(cand.batch.shape[0])
        candidate_model = program.as_module(capture(cand.model, cand.batch, (ref.kind,)), bs)
        measured_as = f"{_KIND_NAMES[ref.kind]} on both sides (the candidate captured now)"
    if energy.provenance == "modeled":
        energy.why_not = (
            "the recipe's sampler is the modeled tier, which counts layers and cannot see "
            "how fast they run; use `energy.sampler: auto` (estimate where no counter)"
        )
        return measured_as
    kw: dict[str, Any] = {"alpha": cfg.alpha, "limit": energy.limit}
    first = _measure(cand, candidate_model, ref.model, pairs=pairs, **kw)
    energy.measurements.append(first)
    if first.outcome == "inconclusive" and cfg.retry_pairs >= 2:
        # More pairs than the first time (twice as many when --pairs exceeds them).
        retry = cfg.retry_pairs if cfg.retry_pairs > pairs else 2 * pairs
        energy.measurements.append(_measure(cand, candidate_model, ref.model, pairs=retry, **kw))
    energy.outcome = energy.measurements[-1].outcome
    if any(m.contended for m in energy.measurements):
        warnings.append(
            "other processes kept CPUs busy during the measurement (both sides alike: "
            "the windows are interleaved)"
        )
    return measured_as


def _accuracy(
    cand: Candidate, ref: Reference, recipe: Recipe, *, unpaired_fix: str
) -> AccuracyCheck | None:
    """The accuracy check on the same examples (the reference evaluated now when it must be).

    Raises:
        GateInputError: the reference's stored outcomes cannot be paired with the candidate's
            and accuracy is gated (says how to make the baseline again).
    """
    from compresslab.bench import scored

    cfg = recipe.check
    if ref.scored is None and ref.model is not None:
        metric, _, outcomes = scored(cand.bench, ref.model)
        ref.scored = Scored(metric, outcomes, outcomes.n, source=ref.evaluated_as)
    try:
        return accuracy_check(
            ref.scored,
            cand.scored,
            metric=recipe.task.metric,
            max_drop=cfg.max_accuracy_drop,
            alpha=cfg.alpha,
        )
    except ValueError as e:
        raise GateInputError(
            f"{e}, so check.max_accuracy_drop cannot be decided on the same examples: "
            + f"{unpaired_fix} (the gate then pairs today's outcomes with the new baseline's)"
        ) from e


def _decide(
    cand: Candidate,
    ref: Reference,
    recipe: Recipe,
    *,
    pairs: int,
    warnings: list[str],
    unpaired_fix: str,
) -> Verdict:
    cfg = recipe.check
    sampler = cand.bench.selection.sampler
    energy = EnergyCheck(
        outcome="not measured",
        limit=1 + cfg.max_increase,
        level=1 - cfg.alpha,
        provenance=str(sampler.provenance),
        sampler=sampler.name,
    )
    # Before the energy: outcomes that cannot be paired are bad input, found in seconds.
    accuracy = _accuracy(cand, ref, recipe, unpaired_fix=unpaired_fix)
    measured_as = "-"
    if ref.model is not None:
        measured_as = _measure_energy(cand, ref, recipe, energy, pairs=pairs, warnings=warnings)
    else:
        energy.why_not = ref.why_not
    modeled = modeled_check(
        ref.modeled_j_per_inference,
        cand.modeled_j_per_inference,
        max_increase=cfg.modeled_max_increase,
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
