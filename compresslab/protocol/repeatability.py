"""The machine's repeatability: how far one absolute measurement moves between measurements.

A measurement's own interval is a Student t interval over its windows, consecutive within a
few seconds. On a shared machine the load changes between measurements minutes apart, and
two such intervals often miss each other (figure 7 of the benchmarks: 3 of 6 covered the mean
of the others). The term added here is *measured*, per machine and per sampler tier, from:

- every finished study on this machine: the baseline is measured again beside every variant
  (the reference side of each pair), so the study knows how much one absolute figure of its
  baseline moves (:func:`compresslab.study.records.repeatability`); and
- repeated standalone measurements of the same model (``compresslab measure``, the API, the
  notebook's ``Study.measure``): a short history of each one's figures.

Each source gives a coefficient of variation (CV) over its ``n`` measurements; sources of the
last :data:`MAX_AGE_S` seconds with at least :data:`MIN_VALUES` measurements are pooled
(``cv² = Σ (n_i - 1) cv_i² / Σ (n_i - 1)``), and the term is the relative 95% half-width of a
prediction interval for one more measurement, ``t95(dof) x cv x sqrt(1 + 1/n)``. A standalone
measurement's interval becomes ``sqrt(windows² + (term x mean)²)``: the windows' half-width
and the term in quadrature (conservative: the between-measurement CV already holds some of the
windows' scatter). Paired ratios have their own term, kept in the same file: pairing cancels a
load common to both sides, and what is left between spans is measured separately
(:mod:`compresslab.protocol.ratio_repeatability`).

The store is :class:`~compresslab.protocol.machine_store.MachineStore`: one JSON file per
machine, holding that machine's fingerprint and both kinds of term (this module's absolute
figures and the paired ratios). A term learnt on another machine is never used silently: a
file whose fingerprint is another machine's is ignored with a warning and the result says so,
and :func:`widen` refuses a term of another machine unless asked (then it says so in the
source); both ask the one check, :func:`~compresslab.protocol.terms.other_machine`.
When no term is known the interval is the windows' and the result says that in words
(:data:`UNKNOWN`). Writes are atomic; two processes writing at once may lose one entry (the
history is a sample of recent figures, not a ledger).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

from compresslab.protocol.machine_store import (
    ENV,
    FORMAT,
    HISTORY,
    MAX_AGE_S,
    MAX_STUDIES,
    MAX_WORKLOADS,
    MachineStore,
    store_dir,
)
from compresslab.protocol.terms import (
    MIN_VALUES,
    UNKNOWN,
    RepeatabilityTerm,
    pooled,
    tier_of,
    utc_date,
)
from compresslab.protocol.types import EnergyResult

__all__ = [
    "ENV",
    "FORMAT",
    "HISTORY",
    "MAX_AGE_S",
    "MAX_STUDIES",
    "MAX_WORKLOADS",
    "MIN_VALUES",
    "UNKNOWN",
    "RepeatabilityStore",
    "RepeatabilityTerm",
    "model_key",
    "pooled",
    "standalone",
    "store_dir",
    "tier_of",
    "utc_date",
    "widen",
    "workload_key",
]

#: The store of both kinds, by the name this module has always given it.
RepeatabilityStore = MachineStore


def workload_key(*parts: object) -> str:
    """A short, stable key for a workload described by ``parts`` (a model, a batch, ...)."""
    text = json.dumps([str(p) for p in parts])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def widen(
    result: EnergyResult,
    term: RepeatabilityTerm | None,
    *,
    unknown: str = UNKNOWN,
    here: Mapping[str, str] | None = None,
    allow_other_machine: bool = False,
) -> EnergyResult:
    """``result`` with the repeatability term added to its interval, in quadrature.

    ``ci95_windows_j_per_inference`` keeps the windows' half-width; ``ci95_j_per_inference``
    becomes ``sqrt(windows² + (term.ci95_rel x mean)²)``. Without a term the interval stays
    the windows' and ``repeatability_source`` says ``unknown``.

    Raises:
        OtherMachineError: ``term`` was measured on another machine and not
            ``allow_other_machine`` (with it: a warning, and the source names both machines).
        ValueError: ``term`` is of another sampler tier than ``result``.
    """
    windows = result.ci95_windows_j_per_inference
    if term is None:
        return dataclasses.replace(
            result,
            ci95_j_per_inference=windows,
            repeatability_rel=None,
            repeatability_source=unknown,
        )
    source = term.source_for(
        tier_of(result.sampler, str(result.provenance)),
        here=here,
        allow_other_machine=allow_other_machine,
    )
    extra = term.ci95_rel * result.energy_j_per_inference
    return dataclasses.replace(
        result,
        ci95_j_per_inference=math.hypot(windows, extra),
        repeatability_rel=term.ci95_rel,
        repeatability_source=source,
    )


def standalone(
    result: EnergyResult,
    *,
    key: str,
    label: str,
    store: MachineStore | None = None,
    record: bool = True,
) -> EnergyResult:
    """A standalone measurement widened by this machine's term, then added to its history.

    The term is the one known *before* this measurement (it does not vouch for itself).

    Args:
        result: the measurement, windows only.
        key: what identifies the workload across runs (:func:`workload_key`).
        label: the workload in words (for the source of later terms).
        store: the store (default: this machine's, under :func:`store_dir`).
        record: add this figure to the workload's history.
    """
    store = store if store is not None else MachineStore()
    tier = tier_of(result.sampler, str(result.provenance))
    term = store.term(tier)
    widened = widen(result, term, unknown=store.why_unknown(), here=store.here)
    if record:
        store.record_measurement(
            key=key, label=label, tier=tier, energy_j=result.energy_j_per_inference
        )
    return widened


def model_key(model: Any, inputs: Any, threads: int | None) -> tuple[str, str]:
    """``(key, label)`` of a torch model on a batch: its class, parameter shapes and the batch.

    Two runs of one script measure "the same model" when these agree.
    """
    # Quantized modules keep packed parameters that are not tensors: described by their type.
    shapes = [
        (name, tuple(getattr(p, "shape", ())), str(getattr(p, "dtype", type(p).__name__)))
        for name, p in model.state_dict().items()
    ]
    n_params = sum(p.numel() for p in model.parameters())
    batch = f"{tuple(inputs.shape)} {inputs.dtype}" if hasattr(inputs, "shape") else "?"
    label = f"{type(model).__qualname__} ({n_params} parameters) on a batch {batch}"
    return workload_key(label, shapes, threads), label
