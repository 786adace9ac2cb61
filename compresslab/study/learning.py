"""What a finished search teaches this machine: its repeatability terms, kept in its store."""

from __future__ import annotations

from typing import Any

from compresslab.study.records import baseline_measurements, confirmations


def learn_repeatability(study: Any, storage_url: str) -> dict[str, int]:
    """Keep the spread of the baseline measured beside each variant here, for this machine.

    Standalone measurements on this machine widen their interval by it
    (:mod:`compresslab.protocol.repeatability`); only this machine's trials count.

    Returns:
        The measurements kept, by sampler tier (none below three in a tier).
    """
    from compresslab.machine import machine_id
    from compresslab.protocol.repeatability import RepeatabilityStore
    from compresslab.stats import cv

    store = RepeatabilityStore()
    trials = study.get_trials(deepcopy=False)
    kept = {}
    for tier, values in baseline_measurements(trials, machine=machine_id(store.here)).items():
        if len(values) >= 3:
            store.record_study(
                key=f"{storage_url}#{study.study_name}",
                label=f"study {study.study_name}",
                tier=tier,
                cv=cv(values),
                n=len(values),
            )
            kept[tier] = len(values)
    return kept


def learn_ratio_repeatability(study: Any, storage_url: str) -> dict[str, int]:
    """Keep the spread of each confirmation's rounds measured here, for this machine.

    Each confirmation measured a claim in rounds minutes apart (:mod:`.confirm`): their log
    ratios' spread beyond what their own pairs explain is the machine's repeatability of
    paired ratios between spans, which widens every single-span ratio measured here
    afterwards (:mod:`compresslab.protocol.ratio_repeatability`). Only confirmations that
    recorded their rounds' spread and this machine's id count (older ones, or another
    machine's, teach nothing).

    Returns:
        The rounds kept, by sampler tier.
    """
    from compresslab.machine import machine_id
    from compresslab.protocol.ratio_repeatability import MIN_SPANS, record_confirmation
    from compresslab.protocol.repeatability import RepeatabilityStore

    store = RepeatabilityStore()
    here = machine_id(store.here)
    kept: dict[str, int] = {}
    for number, c in sorted(confirmations(study).items()):
        logs, within = list(c.round_log_ratios), list(c.round_within_var)
        if c.machine_id != here or len(logs) < MIN_SPANS or len(within) != len(logs):
            continue
        tier = c.tier or "?"
        record_confirmation(
            store,
            key=f"{storage_url}#{study.study_name}#{number}",
            label=f"trial {number} of study {study.study_name}",
            tier=tier,
            logs=logs,
            within=within,
            at=c.at,
        )
        kept[tier] = kept.get(tier, 0) + len(logs)
    return kept
