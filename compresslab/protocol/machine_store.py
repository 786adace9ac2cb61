"""The machine's repeatability store: one JSON file per machine holding both kinds of term.

The file is ``<store>/<machine id>.json`` (the id of :func:`compresslab.machine.machine_id`,
the calibration's), holding that machine's fingerprint; ``<store>`` is
``$COMPRESSLAB_REPEATABILITY_DIR``, else ``repeatability/`` in compresslab's cache folder.
It keeps, by sampler tier (:func:`~compresslab.protocol.terms.tier_of`), the sources of each
kind (:mod:`compresslab.protocol.terms`)::

    {"format": 1, "machine": {...fingerprint},
     "tiers":  {tier: {"studies": {key: {label, cv, n, at}},
                       "workloads": {key: {label, values_j: [...], at: [...]}}}},
     "ratios": {tier: {"confirmations": {key: {label, logs: [...], within: [...], at}},
                       "workloads": {key: {label, logs: [...], within: [...], at: [...]}}}}}

``tiers`` holds the absolute figures (a study's baseline spread, a standalone workload's
history of joules per inference), ``ratios`` the paired ratios (a confirmation's rounds, a
standalone variant's history of log ratios and their pairs' variances).

A file whose fingerprint is another machine's is never read nor written: it is ignored with a
warning, and the results say so (:meth:`MachineStore.why_unknown`). Writes are atomic; two
processes writing at once may lose one entry (the history is a sample of recent figures, not
a ledger), and a failed write is logged, never raised: it costs the history, never a
measurement.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from compresslab.fsio import atomic_write_text
from compresslab.machine import describe_machine, fingerprint, machine_id
from compresslab.protocol.terms import (
    UNKNOWN,
    RatioTerm,
    RepeatabilityTerm,
    other_machine,
    pooled,
    pooled_ratio,
)
from compresslab.stats import cv

log = logging.getLogger(__name__)

#: Environment variable naming the store's folder.
ENV = "COMPRESSLAB_REPEATABILITY_DIR"
FORMAT = 1
#: Figures (or log ratios) kept per standalone workload (the newest), and workloads kept per
#: tier, in each kind.
HISTORY = 10
MAX_WORKLOADS = 20
#: Studies (absolute kind) and confirmations (ratios) kept per tier.
MAX_STUDIES = 10
MAX_CONFIRMATIONS = 30
#: Sources older than this are not used: the machine and its load change over weeks.
MAX_AGE_S = 30 * 86400.0
#: Each kind's key in the file, and the keys of its two sources under a tier.
LAYOUT = {
    RepeatabilityTerm.kind: ("tiers", "studies", "workloads"),
    RatioTerm.kind: ("ratios", "confirmations", "workloads"),
}


def store_dir() -> Path:
    """``$COMPRESSLAB_REPEATABILITY_DIR``, else ``repeatability/`` in the cache folder."""
    env = os.environ.get(ENV)
    if env:
        return Path(env)
    from compresslab.tasks.cache import cache_dir

    return cache_dir() / "repeatability"


class MachineStore:
    """This machine's repeatability sources of both kinds, in one JSON file.

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

    # -- the file -------------------------------------------------------------------------

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
        self.foreign = other_machine(data.get("machine") or {}, self.here)
        if self.foreign is not None:
            log.warning(
                "repeatability store %s holds another machine's figures (%s, not this one, %s): "
                "not used here",
                self.path,
                self.foreign,
                describe_machine(self.here),
            )
            return empty
        return data

    def write(self, data: dict[str, Any]) -> None:
        """Replace the file atomically (a failed write is logged: it never fails a measurement)."""
        try:
            atomic_write_text(self.path, json.dumps(data, indent=1, sort_keys=True) + "\n")
        except OSError as e:  # a read-only cache costs the history, never the measurement
            log.warning("repeatability store %s not written (%s)", self.path, e)

    def why_unknown(self, unknown: str = UNKNOWN) -> str:
        """What a result says when no term is known (after the store was read).

        ``unknown`` is the kind's own sentence (:data:`~compresslab.protocol.terms.UNKNOWN`,
        or the ratios' :data:`~compresslab.protocol.terms.RATIO_UNKNOWN`).
        """
        if self.foreign is not None:
            return (
                f"{unknown} (the store at {self.path} holds another machine's figures, "
                f"{self.foreign}: never used here)"
            )
        return unknown

    def _tier(self, data: dict[str, Any], kind: str, tier: str) -> dict[str, Any]:
        """The sources of ``kind`` under ``tier`` in ``data``, made when missing."""
        key, *sources = LAYOUT[kind]
        entry: dict[str, Any] = data.setdefault(key, {}).setdefault(tier, {})
        for name in sources:
            entry.setdefault(name, {})
        return entry

    def _update(self, kind: str, tier: str, change: Callable[[dict[str, Any]], None]) -> None:
        """Read, ``change`` the sources of ``kind`` under ``tier``, write (this machine's only)."""
        data = self.read()
        if self.foreign is not None:
            return  # never mixed into another machine's file
        change(self._tier(data, kind, tier))
        self.write(data)

    def _recent(self, kind: str, tier: str) -> dict[str, Any]:
        """The sources of ``kind`` under ``tier`` as read (empty: none, or another machine's)."""
        key = LAYOUT[kind][0]
        return (self.read().get(key) or {}).get(tier) or {}

    # -- absolute figures -----------------------------------------------------------------

    def record_study(
        self, *, key: str, label: str, tier: str, cv: float, n: int, at: float | None = None
    ) -> None:
        """Keep a study's baseline spread (``cv`` over ``n`` measurements), newest per study."""
        entry = {"label": label, "cv": cv, "n": n, "at": at if at is not None else time.time()}
        self._update(
            RepeatabilityTerm.kind, tier, lambda t: _keep(t["studies"], key, entry, MAX_STUDIES)
        )

    def record_measurement(
        self, *, key: str, label: str, tier: str, energy_j: float, at: float | None = None
    ) -> None:
        """Add one standalone figure (J per inference) to the history of workload ``key``."""
        if not (math.isfinite(energy_j) and energy_j > 0):
            return
        values = {"values_j": energy_j, "at": at if at is not None else time.time()}
        self._update(
            RepeatabilityTerm.kind, tier, lambda t: _append(t["workloads"], key, label, values)
        )

    def sources(self, tier: str, *, now: float | None = None) -> list[dict[str, Any]]:
        """Every recent absolute source of ``tier`` here: ``{"cv", "n", "what", "at"}``."""
        now = now if now is not None else time.time()
        tiers = self._recent(RepeatabilityTerm.kind, tier)
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
        """This machine's absolute term for ``tier`` (None: no source with enough figures)."""
        return pooled(self.sources(tier, now=now), tier=tier, machine=self.here)

    # -- paired ratios --------------------------------------------------------------------

    def record_confirmation(
        self,
        *,
        key: str,
        label: str,
        tier: str,
        logs: Sequence[float],
        within: Sequence[float],
        at: float | None = None,
    ) -> None:
        """Keep one confirmation's rounds (their log ratios and pair variances), newest per key."""
        entry = {
            "label": label,
            "logs": [float(x) for x in logs],
            "within": [float(x) for x in within],
            "at": at if at is not None else time.time(),
        }
        self._update(
            RatioTerm.kind, tier, lambda t: _keep(t["confirmations"], key, entry, MAX_CONFIRMATIONS)
        )

    def record_paired(
        self,
        *,
        key: str,
        label: str,
        tier: str,
        log_ratio: float,
        within: float,
        at: float | None = None,
    ) -> None:
        """Add one standalone paired measurement (its log ratio and pair variance) to ``key``."""
        if not (math.isfinite(log_ratio) and math.isfinite(within)):
            return
        values = {"logs": log_ratio, "within": within, "at": at if at is not None else time.time()}
        self._update(RatioTerm.kind, tier, lambda t: _append(t["workloads"], key, label, values))

    def ratio_sources(self, tier: str, *, now: float | None = None) -> list[dict[str, Any]]:
        """Every recent ratio source of ``tier`` here: ``{"logs", "within", "what", "at"}``."""
        now = now if now is not None else time.time()
        kind = self._recent(RatioTerm.kind, tier)
        out: list[dict[str, Any]] = []
        # An entry that does not parse (a hand-edited or half-written file) is skipped, said so:
        # a measurement never fails on the store.
        for c in (kind.get("confirmations") or {}).values():
            try:
                out.append(
                    {
                        "logs": [float(x) for x in c["logs"]],
                        "within": [float(x) for x in c["within"]],
                        "at": float(c["at"]),
                        "what": f"{len(c['logs'])} confirmation rounds of {c['label']}",
                    }
                )
            except (KeyError, TypeError, ValueError) as e:
                log.warning("a confirmation in %s is unreadable (%r): not used", self.path, e)
        for w in (kind.get("workloads") or {}).values():
            try:
                if len(w["logs"]) >= 2:
                    out.append(
                        {
                            "logs": [float(x) for x in w["logs"]],
                            "within": [float(x) for x in w["within"]],
                            "at": float(w["at"][-1]),
                            "what": f"{len(w['logs'])} paired measurements of {w['label']}",
                        }
                    )
            except (KeyError, TypeError, ValueError, IndexError) as e:
                log.warning("a paired history in %s is unreadable (%r): not used", self.path, e)
        return [s for s in out if now - float(s["at"]) <= MAX_AGE_S]

    def ratio_term(self, tier: str, *, now: float | None = None) -> RatioTerm | None:
        """This machine's ratio term for ``tier`` (None: no source with enough spans yet)."""
        return pooled_ratio(self.ratio_sources(tier, now=now), tier=tier, machine=self.here)


def _keep(entries: dict[str, Any], key: str, entry: dict[str, Any], most: int) -> None:
    """Put ``entry`` at ``key`` (replacing it); keep the newest ``most`` entries by ``at``."""
    entries[key] = entry
    for old in sorted(entries, key=lambda k: entries[k]["at"])[:-most]:
        del entries[old]


def _append(workloads: dict[str, Any], key: str, label: str, values: dict[str, float]) -> None:
    """Add ``values`` (one per history list, ``at`` included) to workload ``key``'s history.

    Each list keeps its newest :data:`HISTORY`; the newest :data:`MAX_WORKLOADS` workloads by
    their last ``at`` are kept.
    """
    entry = workloads.setdefault(key, {"label": label, **{name: [] for name in values}})
    entry["label"] = label
    for name, value in values.items():
        entry[name] = [*entry[name], value][-HISTORY:]
    for old in sorted(workloads, key=lambda k: workloads[k]["at"][-1])[:-MAX_WORKLOADS]:
        del workloads[old]
