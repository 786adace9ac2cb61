"""Trials and frontier as pandas DataFrames (the CSV and the tables of the report)."""

from __future__ import annotations

import math

import pandas as pd

from compresslab import units
from compresslab.carbon import CarbonSettings
from compresslab.records import EnergyResult, PairedRatio, Profile, SearchResult, TrialRecord
from compresslab.report import generation
from compresslab.report.figures import carbon_settings

#: Columns of ``trials.csv``, in order (every energy figure next to its provenance).
COLUMNS = [
    "trial",
    "state",
    "variant",
    "baseline",
    "accuracy",
    "accuracy_ci95_low",
    "accuracy_ci95_high",
    "accuracy_delta",
    "accuracy_delta_low",
    "accuracy_delta_high",
    "accuracy_decision",
    "accuracy_examples",
    "accuracy_method",
    "accuracy_examples_to_decide",
    "accuracy_look",
    "accuracy_looks",
    "accuracy_pool",
    "confirmed_accuracy_delta",
    "confirmed_accuracy_low",
    "confirmed_accuracy_high",
    "confirmed_accuracy_decision",
    "confirmed_accuracy_examples",
    "feasible",
    "pareto",
    "energy_j_per_inference",
    "ci95_j_per_inference",
    "energy_ratio_vs_baseline",
    "ratio_ci95_low",
    "ratio_ci95_high",
    "ratio_ci95_low_pairs",
    "ratio_ci95_high_pairs",
    "ratio_repeatability_rel",
    "ratio_repeatability_source",
    "ratio_pairs",
    "confirmed_ratio",
    "confirmed_ci95_low",
    "confirmed_ci95_high",
    "confirmed_pairs",
    "measured_j_per_inference",
    "measured_ci95_j_per_inference",
    "reference_j_per_inference",
    "ci_target_met",
    "systematic_rel",
    "contended",
    "foreign_cpus_mean",
    "threads",
    "kwh_per_1k",
    "gco2e_per_1k",
    "provenance",
    "sampler",
    "gross_j_per_inference",
    "idle_power_w",
    "modeled_j_per_inference",
    "windows",
    "n_inferences",
    "latency_ms_per_batch",
    "latency_p50_ms",
    "latency_p95_ms",
    "throughput_per_s",
    "peak_rss_bytes",
    "batch_size",
    "params",
    "macs_per_inference",
    "size_bytes",
    "memory_bytes",
    "sparsity",
    "screened",
    "reused_from",
    "host",
    "duration_s",
    "error",
    "notes",
]


def _accuracy_columns(r: TrialRecord) -> dict[str, object]:
    """The metric's difference to the baseline's, its interval, how it was made, the decision."""
    a = r.accuracy_vs_baseline
    if a is None:
        return {"accuracy_method": "not compared" if r.evaluation is not None else None}
    return {
        "accuracy_delta": a.delta,
        "accuracy_delta_low": a.low,
        "accuracy_delta_high": a.high,
        "accuracy_decision": a.decision,
        "accuracy_examples": a.examples,
        "accuracy_method": a.method,
        "accuracy_examples_to_decide": a.examples_to_decide,
        "accuracy_look": a.look,
        "accuracy_looks": a.looks,
        "accuracy_pool": a.pool or None,
        **_confirmed_accuracy_columns(r),
    }


def _confirmed_accuracy_columns(r: TrialRecord) -> dict[str, object]:
    """The claim's accuracy difference on the untouched confirmation split (empty: none)."""
    c = r.confirmed.accuracy if r.confirmed is not None else None
    if c is None:
        return {}
    return {
        "confirmed_accuracy_delta": c.delta,
        "confirmed_accuracy_low": c.low,
        "confirmed_accuracy_high": c.high,
        "confirmed_accuracy_decision": c.decision,
        "confirmed_accuracy_examples": c.examples,
    }


def _row(r: TrialRecord, front_ids: set[int], carbon: CarbonSettings | None) -> dict[str, object]:
    e = r.energy
    j = r.energy_j_per_inference
    return {
        "trial": r.number,
        "state": r.state,
        "variant": r.variant,
        "baseline": r.is_baseline,
        "accuracy": r.accuracy if r.accuracy is not None else r.screen_accuracy,
        "accuracy_ci95_low": r.accuracy_ci95[0] if r.accuracy_ci95 else None,
        "accuracy_ci95_high": r.accuracy_ci95[1] if r.accuracy_ci95 else None,
        **_accuracy_columns(r),
        "feasible": r.feasible,
        "pareto": r.number in front_ids,
        "energy_j_per_inference": j if e else None,
        "ci95_j_per_inference": r.ci95_j_per_inference if e else None,
        "kwh_per_1k": units.kwh_per_1k(j) if e else None,
        "gco2e_per_1k": carbon.gco2e(units.kwh_per_1k(j)) if e and carbon else None,
        **_ratio_columns(r),
        **_energy_columns(e),
        "modeled_j_per_inference": r.modeled_j_per_inference,
        "reference_j_per_inference": (
            r.reference_energy.energy_j_per_inference if r.reference_energy else None
        ),
        **_profile_columns(r.profile),
        "screened": r.screened,
        "reused_from": r.reused_from,
        "host": r.host,
        "duration_s": r.duration_s,
        "error": r.error,
        "notes": "; ".join(r.notes),
        **generation.columns(r),  # a generative task's per-token figures (else none)
        **{f"param.{k}": v for k, v in sorted(r.params.items())},
    }


def _ratio_columns(r: TrialRecord) -> dict[str, object]:
    """The paired ratio to the baseline and its confirmation (empty cells: none)."""
    # Paired with the baseline in this trial's span (never two sessions' figures divided).
    vs = r.vs_baseline if r.ratio_vs_baseline is not None else None
    confirmed = r.confirmed
    return {
        "energy_ratio_vs_baseline": r.ratio_vs_baseline,
        "ratio_ci95_low": vs.ci95_low if vs else None,
        "ratio_ci95_high": vs.ci95_high if vs else None,
        # The pairs' own interval (one span of seconds) beside the one widened by the
        # machine's repeatability of ratios; older studies stored the pairs' only.
        "ratio_ci95_low_pairs": _first(vs.ci95_low_pairs, vs.ci95_low) if vs else None,
        "ratio_ci95_high_pairs": _first(vs.ci95_high_pairs, vs.ci95_high) if vs else None,
        "ratio_repeatability_rel": vs.ratio_repeatability_rel if vs else None,
        "ratio_repeatability_source": _ratio_source(vs),
        "ratio_pairs": vs.pairs if vs else None,
        "confirmed_ratio": confirmed.ratio if confirmed else None,
        "confirmed_ci95_low": confirmed.ci95_low if confirmed else None,
        "confirmed_ci95_high": confirmed.ci95_high if confirmed else None,
        "confirmed_pairs": confirmed.pairs if confirmed else None,
    }


#: The columns :func:`_energy_columns` fills (empty for a trial not measured).
def _energy_columns(e: EnergyResult | None) -> dict[str, object]:
    """The trial's own measurement: figures, how it was taken, what disturbed it."""
    if e is None:
        return {}
    return {
        "measured_j_per_inference": e.energy_j_per_inference,
        "measured_ci95_j_per_inference": e.ci95_j_per_inference,
        "ci_target_met": e.ci_target_met,
        "systematic_rel": e.systematic_rel,
        "contended": e.contention.contended,
        "foreign_cpus_mean": e.contention.foreign_cpus_mean,
        "threads": e.threads,
        "provenance": e.provenance.value,
        "sampler": e.sampler,
        "gross_j_per_inference": e.gross_j_per_inference,
        "idle_power_w": e.idle_power_w,
        "windows": e.windows,
        "n_inferences": e.n_inferences,
        "latency_ms_per_batch": e.latency_s_per_batch * 1e3,
        "latency_p50_ms": _ms(e.latency_p50_s_per_batch),
        "latency_p95_ms": _ms(e.latency_p95_s_per_batch),
        "throughput_per_s": _known(e.throughput_per_s),
        "peak_rss_bytes": e.peak_rss_bytes,
        "batch_size": e.batch_size,
    }


def _profile_columns(p: Profile) -> dict[str, object]:
    return {
        "params": p.n_params,
        "macs_per_inference": p.macs_per_inference,
        "size_bytes": p.size_bytes,
        "memory_bytes": p.memory_bytes,
        "sparsity": p.sparsity,
    }


def _first(value: float | None, default: float) -> float:
    return default if value is None else value


def _ratio_source(vs: PairedRatio | None) -> str | None:
    """Where a trial's ratio repeatability term came from, or why there is none."""
    if vs is None or not vs.pairs:
        return None  # the baseline itself, or no paired figure
    source = vs.ratio_repeatability_source
    if source is None:
        return "not considered (measured before ratios were widened): the pairs' interval only"
    return source


def _known(value: float) -> float | None:
    """``value``, or None where it was not recorded (``nan``: a study from before it was)."""
    return None if math.isnan(value) else value


def _ms(seconds: float) -> float | None:
    return None if math.isnan(seconds) else seconds * 1e3


def trials_frame(result: SearchResult) -> pd.DataFrame:
    """One row per trial: parameters, accuracy, energy with provenance and CI, cost, status."""
    front_ids = {r.number for r in result.frontier}
    carbon = carbon_settings(result)
    rows = [_row(r, front_ids, carbon) for r in result.trials]
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=COLUMNS)
    params = sorted(c for c in df.columns if c.startswith("param."))
    extra = [c for c in generation.COLUMNS if c in df.columns]
    for column in COLUMNS:  # a column no trial has a figure for: empty cells, as None
        if column not in df.columns:
            df[column] = None
    return df[COLUMNS + extra + params]


def frontier_frame(result: SearchResult) -> pd.DataFrame:
    """The feasible Pareto frontier, cheapest first."""
    df = trials_frame(result)
    return df[df["pareto"]].sort_values("energy_j_per_inference").reset_index(drop=True)
