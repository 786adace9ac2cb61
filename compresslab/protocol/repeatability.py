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

The store is one JSON file per machine, ``<store>/<machine id>.json`` (the id of
:func:`compresslab.machine.machine_id`, the calibration's), holding that machine's
fingerprint; ``<store>`` is ``$COMPRESSLAB_REPEATABILITY_DIR``, else ``repeatability/`` in
compresslab's cache folder. A term learnt on another machine is never used silently: a file
whose fingerprint is another machine's is ignored with a warning and the result says so, and
:func:`widen` refuses a term of another machine unless asked (then it says so in the source).
When no term is known the interval is the windows' and the result says that in words
(:data:`UNKNOWN`). Writes are atomic; two processes writing at once may lose one entry (the
history is a sample of recent figures, not a ledger).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compresslab.errors import OtherMachineError
from compresslab.fsio import atomic_write_text
from compresslab.machine import describe_machine, fingerprint, machine_id
from compresslab.protocol.types import EnergyResult
from compresslab.stats import cv, t95

log = logging.getLogger(__name__)

#: Environment variable naming the store's folder.
ENV = "COMPRESSLAB_REPEATABILITY_DIR"
#: What a result says when no repeatability is known for its machine and tier.
UNKNOWN = (
    "unknown: this interval covers this run's windows only; measure again to learn the "
    "machine's repeatability"
)
#: Measurements a source needs before its spread counts.
MIN_VALUES = 3
#: Figures kept per standalone workload (the newest), workloads and studies kept per tier.
HISTORY = 10
MAX_WORKLOADS = 20
MAX_STUDIES = 10
#: Sources older than this are not used: the machine and its load change over weeks.
MAX_AGE_S = 30 * 86400.0
FORMAT = 1


def store_dir() -> Path:
    """``$COMPRESSLAB_REPEATABILITY_DIR``, else ``repeatability/`` in the cache folder."""
    env = os.environ.get(ENV)
    if env:
        return Path(env)
    from compresslab.tasks.cache import cache_dir

    return cache_dir() / "repeatability"


def tier_of(sampler: str, provenance: str) -> str:
    """The key a term is kept under besides the machine: sampler and provenance."""
    return f"{sampler}/{provenance}"


def workload_key(*parts: object) -> str:
    """A short, stable key for a workload described by ``parts`` (a model, a batch, ...)."""
    text = json.dumps([str(p) for p in parts])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RepeatabilityTerm:
    """The between-measurement spread of one machine and sampler tier.

    Attributes:
        cv: pooled coefficient of variation of one measurement.
        n: measurements it rests on, in all sources.
        dof: degrees of freedom of the pooled CV (``n`` minus one per source).
        ci95_rel: relative 95% half-width of a prediction for one more measurement.
        tier: the sampler tier (:func:`tier_of`).
        machine: the fingerprint of the machine it was measured on.
        source: where it comes from, in words.
    """

    cv: float
    n: int
    dof: int
    ci95_rel: float
    tier: str
    machine: dict[str, str]
    source: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return dataclasses.asdict(self)


def utc_date(at: float) -> str:
    """The UTC date (``YYYY-MM-DD``) of a Unix time, as sources are named."""
    return dt.datetime.fromtimestamp(at, tz=dt.UTC).strftime("%Y-%m-%d")


def pooled(
    sources: list[dict[str, Any]], *, tier: str, machine: Mapping[str, str]
) -> RepeatabilityTerm | None:
    """The term of ``sources`` (each ``{"cv", "n", "what", "at"}``); None without any usable."""
    usable = [s for s in sources if int(s["n"]) >= MIN_VALUES and math.isfinite(float(s["cv"]))]
    if not usable:
        return None
    dof = sum(int(s["n"]) - 1 for s in usable)
    n = sum(int(s["n"]) for s in usable)
    spread = math.sqrt(sum((int(s["n"]) - 1) * float(s["cv"]) ** 2 for s in usable) / dof)
    usable.sort(key=lambda s: -float(s["at"]))
    said = "; ".join(f"{s['what']}, {utc_date(float(s['at']))}" for s in usable)
    source = (
        f"{said}; on this machine, {describe_machine(machine)}; {tier}: CV "
        f"{100 * spread:.1f}% over {n} measurements"
    )
    return RepeatabilityTerm(
        cv=spread,
        n=n,
        dof=dof,
        ci95_rel=t95(dof) * spread * math.sqrt(1 + 1 / n),
        tier=tier,
        machine=dict(machine),
        source=source,
    )


class RepeatabilityStore:
    """This machine's repeatability sources, in one JSON file (see the module docstring).

    Args:
        directory: the store's folder (default: :func:`store_dir`).
        here: this machine's fingerprint (default: :func:`compresslab.machine.fingerprint`).
    """

    def __init__(
        self, directory: Path | None = None, *, here: Mapping[str, str] | None = None
    ) -> None:
        self.directory = Path(directory) if directory is not None else store_dir()
        self.here = dict(here if here is not None else fingerprint())
        self.path = self.directory / f"{machine_id(self.here)}.json"
        #: Set when the file found at :attr:`path` belongs to another machine (then ignored).
        self.foreign: str | None = None

    def read(self) -> dict[str, Any]:
        """The file's content, or an empty store when absent, unreadable or another machine's.

        Another machine's file sets :attr:`foreign` (whose it is); nothing is written to it.
        """
        empty: dict[str, Any] = {"format": FORMAT, "machine": self.here, "tiers": {}}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return empty
        except (OSError, ValueError) as e:
            log.warning("repeatability store %s unreadable (%s): starting it again", self.path, e)
            return empty
        machine = data.get("machine") or {}
        if machine_id(machine) != machine_id(self.here):
            self.foreign = describe_machine(machine)
            log.warning(
                "repeatability store %s holds another machine's figures (%s, not this one, %s): "
                "not used here",
                self.path,
                self.foreign,
                describe_machine(self.here),
            )
            return empty
        self.foreign = None
        return data

    def write(self, data: dict[str, Any]) -> None:
        """Replace the file atomically (a failed write is logged: it never fails a measurement)."""
        try:
            atomic_write_text(self.path, json.dumps(data, indent=1, sort_keys=True) + "\n")
        except OSError as e:  # a read-only cache costs the history, never the measurement
            log.warning("repeatability store %s not written (%s)", self.path, e)

    def _tier(self, data: dict[str, Any], tier: str) -> dict[str, Any]:
        entry: dict[str, Any] = data["tiers"].setdefault(tier, {})
        entry.setdefault("studies", {})
        entry.setdefault("workloads", {})
        return entry

    def record_study(
        self, *, key: str, label: str, tier: str, cv: float, n: int, at: float | None = None
    ) -> None:
        """Keep a study's baseline spread (``cv`` over ``n`` measurements), newest per study."""
        data = self.read()
        if self.foreign is not None:
            return  # never mixed into another machine's file
        studies = self._tier(data, tier)["studies"]
        studies[key] = {
            "label": label,
            "cv": cv,
            "n": n,
            "at": at if at is not None else time.time(),
        }
        for old in sorted(studies, key=lambda k: studies[k]["at"])[:-MAX_STUDIES]:
            del studies[old]
        self.write(data)

    def record_measurement(
        self, *, key: str, label: str, tier: str, energy_j: float, at: float | None = None
    ) -> None:
        """Add one standalone figure (J per inference) to the history of workload ``key``."""
        if not (math.isfinite(energy_j) and energy_j > 0):
            return
        data = self.read()
        if self.foreign is not None:
            return
        workloads = self._tier(data, tier)["workloads"]
        entry = workloads.setdefault(key, {"label": label, "values_j": [], "at": []})
        entry["label"] = label
        entry["values_j"] = [*entry["values_j"], energy_j][-HISTORY:]
        entry["at"] = [*entry["at"], at if at is not None else time.time()][-HISTORY:]
        for old in sorted(workloads, key=lambda k: workloads[k]["at"][-1])[:-MAX_WORKLOADS]:
            del workloads[old]
        self.write(data)

    def sources(self, tier: str, *, now: float | None = None) -> list[dict[str, Any]]:
        """Every recent source of ``tier`` on this machine: ``{"cv", "n", "what", "at"}``."""
        now = now if now is not None else time.time()
        tiers = self.read()["tiers"].get(tier) or {}
        out = []
        for study in (tiers.get("studies") or {}).values():
            out.append(
                {
                    "cv": study["cv"],
                    "n": study["n"],
                    "at": study["at"],
                    "what": f"{study['n']} baseline measurements of {study['label']}",
                }
            )
        for work in (tiers.get("workloads") or {}).values():
            values = [float(v) for v in work["values_j"]]
            if len(values) >= 2:
                out.append(
                    {
                        "cv": cv(values),
                        "n": len(values),
                        "at": work["at"][-1],
                        "what": f"{len(values)} standalone measurements of {work['label']}",
                    }
                )
        return [s for s in out if now - float(s["at"]) <= MAX_AGE_S]

    def term(self, tier: str, *, now: float | None = None) -> RepeatabilityTerm | None:
        """This machine's term for ``tier`` (None: no source with enough measurements yet)."""
        return pooled(self.sources(tier, now=now), tier=tier, machine=self.here)

    def why_unknown(self, unknown: str = UNKNOWN) -> str:
        """What a result says when no term is known (after the store was read).

        ``unknown`` is the kind's own sentence (:data:`UNKNOWN`, or the ratios' one).
        """
        if self.foreign is not None:
            return (
                f"{unknown} (the store at {self.path} holds another machine's figures, "
                f"{self.foreign}: never used here)"
            )
        return unknown


def term_source(
    source: str,
    machine: Mapping[str, str],
    here: Mapping[str, str],
    *,
    what: str,
    learn: str,
    allow_other_machine: bool,
) -> str:
    """``source``, checked to be this machine's: another machine's term is refused, or said.

    Args:
        source: the term's source, in words.
        machine: the fingerprint the term was measured on.
        here: this machine's fingerprint.
        what: the term, in words (``repeatability term``).
        learn: how to learn this machine's own (ends the refusal's advice).
        allow_other_machine: use another machine's term anyway (with a warning, and the
            returned source says so).

    Raises:
        OtherMachineError: another machine's term, and not ``allow_other_machine``.
    """
    if machine_id(machine) == machine_id(here):
        return source
    message = (
        f"the {what} was measured on {describe_machine(machine)}, not on this machine, "
        f"{describe_machine(here)}: load and noise differ between machines"
    )
    if not allow_other_machine:
        raise OtherMachineError(
            f"{message}: {learn}, or pass allow_other_machine=True to use it anyway"
        )
    log.warning("%s; using it anyway, as asked", message)
    return f"ANOTHER MACHINE's term, used as asked: {source}"


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
    tier = tier_of(result.sampler, str(result.provenance))
    if term.tier != tier:
        raise ValueError(f"a repeatability term of {term.tier} cannot widen a {tier} figure")
    source = term_source(
        term.source,
        term.machine,
        here if here is not None else fingerprint(),
        what="repeatability term",
        learn="measure here again to learn this machine's term",
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
    store: RepeatabilityStore | None = None,
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
    store = store if store is not None else RepeatabilityStore()
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
