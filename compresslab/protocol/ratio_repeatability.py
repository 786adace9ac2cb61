"""The machine's repeatability of paired ratios: how far one span's ratio moves between spans.

A paired ratio (candidate / reference, windows interleaved ABBA) gets its interval from its
own pairs, consecutive within a few seconds. Pairing cancels a load common to both sides, but
a load that changes between spans and slows the two models unequally moves the ratio by more
than its pairs' scatter: on a shared machine at load 3, the same variant measured six times a
few seconds apart gave ratios whose pairs-only intervals covered the others' mean 2 times in 6
(figure 7 of the benchmarks). The term added here is *measured*, per machine and per sampler
tier, from what the lab already measures more than once:

- every confirmation of a study's frontier (:mod:`compresslab.study.confirm`): each claim is
  measured in rounds, minutes apart, each round a few pairs; and
- repeated standalone paired measurements of one variant (``compresslab measure --trial``,
  the API's ``measure_recipe``): a short history of each one's log ratios.

A source of ``k`` spans gives their log ratios ``L_i`` (each the mean of its pairs' log
ratios) and the variance ``v_i = s_i² / m_i`` that span's own ``m_i`` pairs explain. The
between-span variance in excess of the pairs is, by moments, ``var(L) - mean(v)`` with
``k - 1`` degrees of freedom. Sources of the last :data:`MAX_AGE_S` seconds with at least
:data:`MIN_SPANS` spans are pooled by their degrees of freedom, a source whose spans agree
better than their pairs predict (a negative excess) included so that the pool is not biased
upwards, and clipped at zero::

    tau² = max(0, Σ (k_i - 1) (var(L)_i - mean(v)_i) / Σ (k_i - 1))

The term is the 95% half-width, on the log scale, of the ratio a span misses by:
``t95(dof) x tau``. A single-span ratio ``r`` whose pairs give the half-width
``h_pairs = ln(high / r)`` is widened in quadrature on the log scale::

    h = sqrt(h_pairs² + (t95(dof) x tau)²),   interval [r e^-h, r e^h]

(conservative, as the absolute term is: two t quantiles in quadrature). The pairs' own interval
stays beside it (``ratio_pairs``, ``ci95_low_pairs``/``ci95_high_pairs``).

The store is the absolute term's file (:class:`~compresslab.protocol.repeatability.
RepeatabilityStore`: one JSON file per machine, with its fingerprint), under the sibling key
``ratios``. A term learnt on another machine is refused as the absolute one is: a file of
another machine is ignored with a warning and the result says so; :func:`widen_ratio` raises
:class:`~compresslab.errors.OtherMachineError` unless asked. Without a term the interval is
the pairs' and the result says that in words (:data:`RATIO_UNKNOWN`). Writes are atomic; two
processes writing at once may lose one entry (a sample of recent spans, not a ledger).

The energy gate (``compresslab check``) is not widened: it decides on its own interval of the
windows of one job (:func:`compresslab.check.ratio_interval`), reference and candidate
measured side by side there, at the significance level its recipe asks for.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from compresslab.machine import describe_machine, fingerprint
from compresslab.protocol.repeatability import (
    RepeatabilityStore,
    term_source,
    tier_of,
    utc_date,
)
from compresslab.protocol.types import PairedResult
from compresslab.stats import RatioInterval, t95

log = logging.getLogger(__name__)

#: What a paired result says when no ratio repeatability is known for its machine and tier.
RATIO_UNKNOWN = (
    "unknown: this interval covers this span's pairs only; confirm a study's frontier or "
    "measure the variant again to learn the machine's repeatability of ratios"
)
#: Spans a source needs before its spread counts (a confirmation has three rounds).
MIN_SPANS = 3
#: Log ratios kept per standalone workload (the newest), workloads and confirmations per tier.
HISTORY = 10
MAX_WORKLOADS = 20
MAX_CONFIRMATIONS = 30
#: Sources older than this are not used: the machine and its load change over weeks.
MAX_AGE_S = 30 * 86400.0
#: The key of the ratios' kind in the store's file (beside the absolute ``tiers``).
KIND = "ratios"


def pair_log_ratios(paired: Any) -> list[float]:
    """The log ratio of each pair of windows (candidate / reference, net joules)."""
    return [
        math.log(c / r)
        for c, r in zip(
            paired.candidate.window_j_per_inference,
            paired.reference.window_j_per_inference,
            strict=True,
        )
    ]


def span_spread(paired: Any) -> tuple[float, float]:
    """``(L, v)`` of one span: its mean log ratio, and the variance of it its pairs explain.

    ``v = s² / m`` for the ``m`` pairs' log ratios of sample variance ``s²``.

    Raises:
        ValueError: fewer than two pairs.
    """
    logs = pair_log_ratios(paired)
    if len(logs) < 2:
        raise ValueError("a span's spread needs at least two pairs")
    return statistics.fmean(logs), statistics.variance(logs) / len(logs)


def excess(logs: Sequence[float], within: Sequence[float]) -> float:
    """Between-span variance of ``logs`` in excess of the ``within`` variances (may be < 0)."""
    return statistics.variance(logs) - statistics.fmean(within)


@dataclass(frozen=True)
class RatioTerm:
    """The between-span spread of one machine's paired log ratios, for one sampler tier.

    Attributes:
        tau: standard deviation of a span's log ratio beyond its pairs' own scatter.
        n: spans it rests on, in all sources.
        dof: degrees of freedom (``n`` minus one per source).
        ci95_rel: 95% half-width it adds to a log ratio (``t95(dof) x tau``; about the
            relative half-width for small values).
        tier: the sampler tier (:func:`~compresslab.protocol.repeatability.tier_of`).
        machine: the fingerprint of the machine it was measured on.
        source: where it comes from, in words.
    """

    tau: float
    n: int
    dof: int
    ci95_rel: float
    tier: str
    machine: dict[str, str]
    source: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return dataclasses.asdict(self)


def pooled_ratio(
    sources: list[dict[str, Any]], *, tier: str, machine: Mapping[str, str]
) -> RatioTerm | None:
    """The term of ``sources`` (each ``{"logs", "within", "what", "at"}``); None without any."""
    usable = [
        s
        for s in sources
        if len(s["logs"]) >= MIN_SPANS
        and len(s["within"]) == len(s["logs"])
        and all(math.isfinite(float(x)) for x in [*s["logs"], *s["within"]])
    ]
    if not usable:
        return None
    dof = sum(len(s["logs"]) - 1 for s in usable)
    n = sum(len(s["logs"]) for s in usable)
    moment = sum((len(s["logs"]) - 1) * excess(s["logs"], s["within"]) for s in usable) / dof
    tau = math.sqrt(max(0.0, moment))
    usable.sort(key=lambda s: -float(s["at"]))
    said = "; ".join(f"{s['what']}, {utc_date(float(s['at']))}" for s in usable)
    beyond = (
        f"log-ratio SD {100 * tau:.1f}% between spans beyond their pairs' own"
        if tau > 0
        else "no spread between spans beyond their pairs' own"
    )
    source = (
        f"{said}; on this machine, {describe_machine(machine)}; {tier}: {beyond}, over {n} spans"
    )
    return RatioTerm(
        tau=tau,
        n=n,
        dof=dof,
        ci95_rel=t95(dof) * tau,
        tier=tier,
        machine=dict(machine),
        source=source,
    )


def _kind(data: dict[str, Any], tier: str) -> dict[str, Any]:
    entry: dict[str, Any] = data.setdefault(KIND, {}).setdefault(tier, {})
    entry.setdefault("confirmations", {})
    entry.setdefault("workloads", {})
    return entry


def record_confirmation(
    store: RepeatabilityStore,
    *,
    key: str,
    label: str,
    tier: str,
    logs: Sequence[float],
    within: Sequence[float],
    at: float | None = None,
) -> None:
    """Keep one confirmation's rounds (their log ratios and pair variances), newest per key."""
    data = store.read()
    if store.foreign is not None:
        return  # never mixed into another machine's file
    confirmations = _kind(data, tier)["confirmations"]
    confirmations[key] = {
        "label": label,
        "logs": [float(x) for x in logs],
        "within": [float(x) for x in within],
        "at": at if at is not None else time.time(),
    }
    for old in sorted(confirmations, key=lambda k: confirmations[k]["at"])[:-MAX_CONFIRMATIONS]:
        del confirmations[old]
    store.write(data)


def record_paired(
    store: RepeatabilityStore,
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
    data = store.read()
    if store.foreign is not None:
        return
    workloads = _kind(data, tier)["workloads"]
    entry = workloads.setdefault(key, {"label": label, "logs": [], "within": [], "at": []})
    entry["label"] = label
    entry["logs"] = [*entry["logs"], log_ratio][-HISTORY:]
    entry["within"] = [*entry["within"], within][-HISTORY:]
    entry["at"] = [*entry["at"], at if at is not None else time.time()][-HISTORY:]
    for old in sorted(workloads, key=lambda k: workloads[k]["at"][-1])[:-MAX_WORKLOADS]:
        del workloads[old]
    store.write(data)


def ratio_sources(
    store: RepeatabilityStore, tier: str, *, now: float | None = None
) -> list[dict[str, Any]]:
    """Every recent source of ``tier`` on this machine: ``{"logs", "within", "what", "at"}``."""
    now = now if now is not None else time.time()
    kind = (store.read().get(KIND) or {}).get(tier) or {}
    out: list[dict[str, Any]] = []
    # An entry that does not parse (a hand-edited or half-written file) is skipped, said so: a
    # measurement never fails on the store.
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
            log.warning("a confirmation in %s is unreadable (%r): not used", store.path, e)
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
            log.warning("a paired history in %s is unreadable (%r): not used", store.path, e)
    return [s for s in out if now - float(s["at"]) <= MAX_AGE_S]


def ratio_term(
    store: RepeatabilityStore, tier: str, *, now: float | None = None
) -> RatioTerm | None:
    """This machine's term for ``tier`` (None: no source with enough spans yet)."""
    return pooled_ratio(ratio_sources(store, tier, now=now), tier=tier, machine=store.here)


def tier_of_paired(paired: PairedResult) -> str:
    """The tier a paired result's term is kept under: its candidate's sampler and provenance."""
    return tier_of(paired.candidate.sampler, str(paired.candidate.provenance))


def widen_ratio(
    paired: PairedResult,
    term: RatioTerm | None,
    *,
    unknown: str = RATIO_UNKNOWN,
    here: Mapping[str, str] | None = None,
    allow_other_machine: bool = False,
) -> PairedResult:
    """``paired`` with the ratio repeatability term added to its interval, on the log scale.

    ``ratio_pairs`` keeps the pairs' interval; ``ratio`` becomes ``[r e^-h, r e^h]`` with
    ``h = sqrt(ln(high_pairs / r)² + term.ci95_rel²)``. Without a term the interval stays the
    pairs' and ``ratio_repeatability_source`` says ``unknown``. ``ci_target_met`` is unchanged
    (it is the stopping rule's, judged on the pairs).

    Raises:
        OtherMachineError: ``term`` was measured on another machine and not
            ``allow_other_machine`` (with it: a warning, and the source says so).
        ValueError: ``term`` is of another sampler tier than ``paired``'s candidate.
    """
    pairs = paired.ratio_pairs or paired.ratio
    if term is None:
        return dataclasses.replace(
            paired,
            ratio=pairs,
            ratio_pairs=pairs,
            ratio_repeatability_rel=None,
            ratio_repeatability_source=unknown,
        )
    tier = tier_of_paired(paired)
    if term.tier != tier:
        raise ValueError(f"a ratio repeatability term of {term.tier} cannot widen a {tier} ratio")
    source = term_source(
        term.source,
        term.machine,
        here if here is not None else fingerprint(),
        what="ratio repeatability term",
        learn="confirm a study or measure again here to learn this machine's term",
        allow_other_machine=allow_other_machine,
    )
    r = pairs.ratio
    h_pairs = max(math.log(pairs.high / r), math.log(r / pairs.low))
    h = math.hypot(h_pairs, term.ci95_rel)
    return dataclasses.replace(
        paired,
        ratio=RatioInterval(r, r * math.exp(-h), r * math.exp(h), pairs.pairs),
        ratio_pairs=pairs,
        ratio_repeatability_rel=term.ci95_rel,
        ratio_repeatability_source=source,
    )


def single_span(
    paired: PairedResult,
    *,
    key: str | None = None,
    label: str = "",
    store: RepeatabilityStore | None = None,
) -> PairedResult:
    """A single-span paired ratio widened by this machine's term, then added to its history.

    The term is the one known *before* this measurement (it does not vouch for itself).

    Args:
        paired: the measurement, pairs only.
        key: what identifies the variant and its reference across runs
            (:func:`~compresslab.protocol.repeatability.workload_key`); None: not recorded
            (a search's trial: each variant is measured once).
        label: the variant in words (for the source of later terms).
        store: the store (default: this machine's).
    """
    store = store if store is not None else RepeatabilityStore()
    tier = tier_of_paired(paired)
    term = ratio_term(store, tier)
    widened = widen_ratio(paired, term, unknown=store.why_unknown(RATIO_UNKNOWN), here=store.here)
    if key is not None:
        try:
            log_ratio, within = span_spread(paired)
        except (ValueError, ZeroDivisionError):
            return widened
        record_paired(store, key=key, label=label, tier=tier, log_ratio=log_ratio, within=within)
    return widened
