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
  ``compresslab.measure``): a short history of each one's log ratios.

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

The store is the absolute term's file (:class:`~compresslab.protocol.machine_store.
MachineStore`: one JSON file per machine, with its fingerprint), under the sibling key
``ratios``. A term learnt on another machine is refused as the absolute one is, by the same
check (:func:`~compresslab.protocol.terms.other_machine`): a file of another machine is
ignored with a warning and the result says so; :func:`widen_ratio` raises
:class:`~compresslab.errors.OtherMachineError` unless asked. Without a term the interval is
the pairs' and the result says that in words (:data:`RATIO_UNKNOWN`).

The energy gate (``compresslab check``) is not widened: it decides on its own interval of the
windows of one job (:func:`compresslab.check.ratio_interval`), reference and candidate
measured side by side there, at the significance level its recipe asks for.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from compresslab.protocol.machine_store import (
    HISTORY,
    MAX_AGE_S,
    MAX_CONFIRMATIONS,
    MAX_WORKLOADS,
    MachineStore,
)
from compresslab.protocol.terms import (
    MIN_SPANS,
    RATIO_UNKNOWN,
    RatioTerm,
    excess,
    pooled_ratio,
    tier_of,
)
from compresslab.protocol.types import PairedResult
from compresslab.stats import RatioInterval

__all__ = [
    "HISTORY",
    "KIND",
    "MAX_AGE_S",
    "MAX_CONFIRMATIONS",
    "MAX_WORKLOADS",
    "MIN_SPANS",
    "RATIO_UNKNOWN",
    "RatioTerm",
    "excess",
    "pair_log_ratios",
    "pooled_ratio",
    "ratio_sources",
    "ratio_term",
    "record_confirmation",
    "record_paired",
    "single_span",
    "span_spread",
    "tier_of_paired",
    "widen_ratio",
]

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


def record_confirmation(
    store: MachineStore,
    *,
    key: str,
    label: str,
    tier: str,
    logs: Sequence[float],
    within: Sequence[float],
    at: float | None = None,
) -> None:
    """Keep one confirmation's rounds in ``store`` (:meth:`MachineStore.record_confirmation`)."""
    store.record_confirmation(key=key, label=label, tier=tier, logs=logs, within=within, at=at)


def record_paired(
    store: MachineStore,
    *,
    key: str,
    label: str,
    tier: str,
    log_ratio: float,
    within: float,
    at: float | None = None,
) -> None:
    """Add one standalone paired measurement to ``store`` (:meth:`MachineStore.record_paired`)."""
    store.record_paired(key=key, label=label, tier=tier, log_ratio=log_ratio, within=within, at=at)


def ratio_sources(
    store: MachineStore, tier: str, *, now: float | None = None
) -> list[dict[str, Any]]:
    """Every recent ratio source of ``tier`` in ``store`` (:meth:`MachineStore.ratio_sources`)."""
    return store.ratio_sources(tier, now=now)


def ratio_term(store: MachineStore, tier: str, *, now: float | None = None) -> RatioTerm | None:
    """This machine's ratio term for ``tier`` (:meth:`MachineStore.ratio_term`)."""
    return store.ratio_term(tier, now=now)


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
    source = term.source_for(
        tier_of_paired(paired), here=here, allow_other_machine=allow_other_machine
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
    store: MachineStore | None = None,
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
    store = store if store is not None else MachineStore()
    tier = tier_of_paired(paired)
    term = store.ratio_term(tier)
    widened = widen_ratio(paired, term, unknown=store.why_unknown(RATIO_UNKNOWN), here=store.here)
    if key is not None:
        try:
            log_ratio, within = span_spread(paired)
        except (ValueError, ZeroDivisionError):
            return widened
        store.record_paired(key=key, label=label, tier=tier, log_ratio=log_ratio, within=within)
    return widened
