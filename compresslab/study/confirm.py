"""Confirmed claims: the frontier measured again, paired with the baseline, after the search.

A search measures each variant once, each paired with the baseline in its own span of time.
Before a report states "N x less energy", the frontier's variants (the best one within the
tolerance among them) are re-measured with more pairs; the confirmed ratio and its interval
are stored with the study (``confirmed:<trial>``) beside the search-time figure.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import statistics
import time
from typing import Any

from compresslab.bench import NO_CONFIRMATION_SPLIT, VariantBench, confirm_accuracy
from compresslab.machine import machine_id
from compresslab.protocol import PairedResult
from compresslab.protocol.hostlock import host_lock
from compresslab.protocol.ratio_repeatability import pair_log_ratios, span_spread, tier_of_paired
from compresslab.records import Confirmation, TrialRecord
from compresslab.stats import ci95_halfwidth
from compresslab.study import attrs
from compresslab.study.objective import failure_reason
from compresslab.study.records import comparison_tolerance, records_from_study, spec_of_trial

log = logging.getLogger(__name__)


def claims_to_confirm(records: list[TrialRecord]) -> list[TrialRecord]:
    """The feasible frontier's variants (not the baseline), cheapest first.

    Feasible: decided within the tolerance on the same examples as the baseline (the point
    comparison in a study that decided nothing).
    """
    from compresslab.records import pareto_front

    return [r for r in pareto_front(records) if not r.is_baseline]


#: Rounds a confirmation is spread over: the interval comes from the rounds' spread, so it
#: covers a change of load between minutes, not only the noise within one span of windows.
ROUNDS = 3


def confirm_claims(
    study: Any,
    bench: VariantBench,
    *,
    min_accuracy: float,
    pairs: int,
    again: bool = False,
) -> dict[int, Confirmation]:
    """Re-measure the frontier paired with the baseline; store and return each ratio.

    The pairs are spread in time: in each of :data:`ROUNDS` rounds every claim is measured
    once (a few interleaved pairs with the baseline), so one claim's rounds lie minutes apart
    when the frontier is large. The confirmed ratio is the geometric mean of all the pairs,
    and its 95% interval comes from the rounds' spread (Student t, rounds - 1 degrees of
    freedom), never narrower than the pairs' own interval: honest about a load that changes
    between measurements, which the pairs of one span cannot see. The search-time measurement
    is not pooled in: the frontier was selected on it, so it is biased towards savings (the
    winner's curse).

    Args:
        study: the Optuna study (confirmations are stored as its user attributes).
        bench: the bench the search used (same task, context and sampler).
        min_accuracy: the tolerance's minimum accuracy.
        pairs: pairs of windows per claim in all (split over the rounds, at least 2 each).
        again: also re-measure claims confirmed before (else they are kept).

    Returns:
        ``{trial number: confirmation}`` for the variants re-measured now.
    """
    tolerance = comparison_tolerance(bench.recipe, study)
    records = records_from_study(study, min_accuracy=min_accuracy, tolerance=tolerance)
    todo = [r for r in claims_to_confirm(records) if again or not r.confirmed]
    models: dict[int, tuple[TrialRecord, Any, Any]] = {}
    for record in todo:
        try:
            spec, runtime = spec_of_trial(study, record.number)
            with host_lock(exclusive=False):
                models[record.number] = (record, bench.build(spec), runtime)
        except Exception as e:  # a claim that cannot be rebuilt stays unconfirmed, said so
            log.warning("trial %d could not be confirmed: %s", record.number, failure_reason(e))
    per_round = max(2, math.ceil(pairs / ROUNDS))
    rounds: dict[int, list[PairedResult]] = {n: [] for n in models}
    started = time.time()
    for _ in range(ROUNDS):
        for number, (_record, model, runtime) in models.items():
            if number not in rounds:
                continue  # failed in an earlier round
            try:
                rounds[number].append(bench.measure_paired(model, runtime=runtime, pairs=per_round))
            except Exception as e:
                log.warning("trial %d could not be confirmed: %s", number, failure_reason(e))
                del rounds[number]
    done: dict[int, Confirmation] = {}
    for number, measured in rounds.items():
        record = models[number][0]
        confirmation = _combine(measured, search_ratio=record.ratio_vs_baseline)
        confirmation = dataclasses.replace(
            confirmation,
            spread_s=time.time() - started,
            **confirmed_accuracy(bench, models[number][1], number),
        )
        try:
            confirmation = dataclasses.replace(confirmation, **_rounds_spread(measured))
        except (ValueError, ZeroDivisionError, IndexError) as e:  # it confirms all the same
            log.warning("trial %d's rounds teach no repeatability: %s", number, e)
        attrs.write_confirmation(study, number, confirmation)
        done[number] = confirmation
        log.info(
            "confirmed trial %d (%s): %.3f [%.3f, %.3f] over %d rounds (search: %s)",
            number,
            record.variant,
            confirmation.ratio,
            confirmation.ci95_low,
            confirmation.ci95_high,
            len(measured),
            record.ratio_vs_baseline,
        )
    return done


def confirmed_accuracy(bench: VariantBench, model: Any, number: int) -> dict[str, Any]:
    """The claim's accuracy against the baseline's on the task's untouched confirmation split.

    The examples that selected a variant do not certify it (the winner's curse): the split was
    never used by the search. Returns the :class:`Confirmation` fields ``accuracy`` and
    ``accuracy_note`` (why there is none: the task has no such split, or it failed).
    """
    try:
        with host_lock(exclusive=False):
            claim = confirm_accuracy(bench, model)
    except Exception as e:  # the energy confirmation stands on its own
        log.warning("trial %d's accuracy could not be confirmed: %s", number, failure_reason(e))
        return {"accuracy_note": f"not confirmed: {failure_reason(e)}"}
    if claim is None:
        return {"accuracy_note": NO_CONFIRMATION_SPLIT}
    return {"accuracy": claim}


def _pair_logs(paired: PairedResult) -> list[float]:
    """The log ratio of each pair of windows (candidate / reference, net)."""
    return pair_log_ratios(paired)


def _rounds_spread(rounds: list[PairedResult]) -> dict[str, Any]:
    """What the rounds teach the machine's repeatability of ratios (their spans' spread).

    Each round's mean log ratio and the variance of it its own pairs explain
    (:func:`compresslab.protocol.ratio_repeatability.span_spread`), the sampler tier, and the
    machine they were measured on; :func:`compresslab.study.run.learn_ratio_repeatability` keeps
    them in this machine's store.
    """
    spans = [span_spread(p) for p in rounds]
    return {
        "round_log_ratios": tuple(x for x, _ in spans),
        "round_within_var": tuple(v for _, v in spans),
        "tier": tier_of_paired(rounds[0]),
        "machine_id": machine_id(),
    }


def _combine(rounds: list[PairedResult], *, search_ratio: float | None) -> Confirmation:
    """One confirmation from rounds measured apart in time.

    The ratio is the geometric mean of all pairs. Its interval is the wider of two Student t
    intervals: from the rounds' spread (a load that changes between rounds) and from the
    pairs' own spread (the noise within them). Three rounds give the first only two degrees
    of freedom: rounds that happen to agree must not make an interval narrower than the pairs
    themselves allow.
    """
    logs = [math.log(p.ratio.ratio) for p in rounds]
    pair_logs = [x for p in rounds for x in _pair_logs(p)]
    mean = statistics.fmean(pair_logs) if pair_logs else statistics.fmean(logs)
    between = ci95_halfwidth(logs)
    within = ci95_halfwidth(pair_logs) if len(pair_logs) >= 2 else 0.0
    half = max(between, within)
    return Confirmation(
        ratio=math.exp(mean),
        ci95_low=math.exp(mean - half),
        ci95_high=math.exp(mean + half),
        pairs=sum(p.ratio.pairs for p in rounds),
        rounds=len(rounds),
        round_ratios=tuple(p.ratio.ratio for p in rounds),
        interval_from="rounds" if between >= within else "pairs",
        order="ABBA, in rounds spread in time",
        search_ratio=search_ratio,
        candidate_j_per_inference=statistics.fmean(
            p.candidate.energy_j_per_inference for p in rounds
        ),
        reference_j_per_inference=statistics.fmean(
            p.reference.energy_j_per_inference for p in rounds
        ),
        contended=any(p.candidate.contended or p.reference.contended for p in rounds),
        at=time.time(),
    )
