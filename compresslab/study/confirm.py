"""Confirmed claims: the frontier measured again, paired with the baseline, after the search.

A search measures each variant once, each paired with the baseline in its own span of time.
Before a report states "N x less energy", the frontier's variants (the best one within the
tolerance among them) are re-measured with more pairs; the confirmed ratio and its interval
are stored with the study (``confirmed:<trial>``) beside the search-time figure.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from compresslab.bench import VariantBench
from compresslab.hostlock import host_lock
from compresslab.results import TrialRecord
from compresslab.study.objective import failure_reason
from compresslab.study.records import CONFIRMED_PREFIX, records_from_study, spec_of_trial

log = logging.getLogger(__name__)


def claims_to_confirm(records: list[TrialRecord], *, min_accuracy: float) -> list[TrialRecord]:
    """The feasible frontier's variants (not the baseline), cheapest first."""
    from compresslab.results import pareto_front

    feasible = [r for r in records if r.accuracy is not None and r.accuracy >= min_accuracy]
    return [r for r in pareto_front(feasible) if not r.is_baseline]


def confirm_claims(
    study: Any,
    bench: VariantBench,
    *,
    min_accuracy: float,
    pairs: int,
    again: bool = False,
) -> dict[int, dict[str, Any]]:
    """Re-measure the frontier paired with the baseline; store and return each ratio.

    Args:
        study: the Optuna study (confirmations are stored as its user attributes).
        bench: the bench the search used (same task, context and sampler).
        min_accuracy: the tolerance's minimum accuracy.
        pairs: pairs of windows per variant (at least; more if the CI target needs them).
        again: also re-measure claims confirmed before (else they are kept).

    Returns:
        ``{trial number: confirmation}`` for the variants re-measured now.
    """
    records = records_from_study(study, min_accuracy=min_accuracy)
    done: dict[int, dict[str, Any]] = {}
    for record in claims_to_confirm(records, min_accuracy=min_accuracy):
        if record.confirmed and not again:
            continue
        spec, runtime = spec_of_trial(study, record.number)
        try:
            with host_lock(exclusive=False):
                model = bench.build(spec)
            paired = bench.measure_paired(model, runtime=runtime, pairs=pairs)
        except Exception as e:  # a claim that cannot be confirmed stays unconfirmed, said so
            log.warning("trial %d could not be confirmed: %s", record.number, failure_reason(e))
            continue
        confirmation = {
            **paired.vs_reference(),
            "search_ratio": record.ratio_vs_baseline,
            "candidate_j_per_inference": paired.candidate.energy_j_per_inference,
            "reference_j_per_inference": paired.reference.energy_j_per_inference,
            "contended": paired.candidate.contended or paired.reference.contended,
            "at": time.time(),
        }
        study.set_user_attr(f"{CONFIRMED_PREFIX}{record.number}", confirmation)
        done[record.number] = confirmation
        log.info(
            "confirmed trial %d (%s): %.3f [%.3f, %.3f] (search: %s)",
            record.number,
            record.variant,
            confirmation["ratio"],
            confirmation["ci95_low"],
            confirmation["ci95_high"],
            record.ratio_vs_baseline,
        )
    return done
