"""Trials and frontier as pandas DataFrames (the CSV and the tables of the report)."""

from __future__ import annotations

import pandas as pd

from compresslab import units
from compresslab.carbon import CarbonSettings
from compresslab.records import SearchResult, TrialRecord
from compresslab.report import generation

#: Columns of ``trials.csv``, in order (every energy figure next to its provenance).
COLUMNS = [
    "trial",
    "state",
    "variant",
    "baseline",
    "accuracy",
    "accuracy_ci95_low",
    "accuracy_ci95_high",
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


def _row(r: TrialRecord, front_ids: set[int], carbon: CarbonSettings | None) -> dict[str, object]:
    e = r.energy or {}
    j = r.energy_j_per_inference
    vs = r.vs_baseline if r.ratio_vs_baseline is not None else {}
    confirmed = r.confirmed or {}
    contention = e.get("contention") or {}
    return {
        "trial": r.number,
        "state": r.state,
        "variant": r.variant,
        "baseline": r.is_baseline,
        "accuracy": r.accuracy if r.accuracy is not None else r.screen_accuracy,
        "accuracy_ci95_low": r.accuracy_ci95[0] if r.accuracy_ci95 else None,
        "accuracy_ci95_high": r.accuracy_ci95[1] if r.accuracy_ci95 else None,
        "feasible": r.feasible,
        "pareto": r.number in front_ids,
        "energy_j_per_inference": j if e else None,
        "ci95_j_per_inference": r.ci95_j_per_inference if e else None,
        # Paired with the baseline in this trial's span (never two sessions' figures divided).
        "energy_ratio_vs_baseline": r.ratio_vs_baseline,
        "ratio_ci95_low": (vs or {}).get("ci95_low"),
        "ratio_ci95_high": (vs or {}).get("ci95_high"),
        # The pairs' own interval (one span of seconds) beside the one widened by the
        # machine's repeatability of ratios; older studies stored the pairs' only.
        "ratio_ci95_low_pairs": (vs or {}).get("ci95_low_pairs", (vs or {}).get("ci95_low")),
        "ratio_ci95_high_pairs": (vs or {}).get("ci95_high_pairs", (vs or {}).get("ci95_high")),
        "ratio_repeatability_rel": (vs or {}).get("ratio_repeatability_rel"),
        "ratio_repeatability_source": _ratio_source(vs or {}),
        "ratio_pairs": (vs or {}).get("pairs"),
        "confirmed_ratio": confirmed.get("ratio"),
        "confirmed_ci95_low": confirmed.get("ci95_low"),
        "confirmed_ci95_high": confirmed.get("ci95_high"),
        "confirmed_pairs": confirmed.get("pairs"),
        "measured_j_per_inference": e.get("energy_j_per_inference"),
        "measured_ci95_j_per_inference": e.get("ci95_j_per_inference"),
        "reference_j_per_inference": (r.reference_energy or {}).get("energy_j_per_inference"),
        "ci_target_met": e.get("ci_target_met"),
        "systematic_rel": e.get("systematic_rel"),
        "contended": contention.get("contended"),
        "foreign_cpus_mean": contention.get("foreign_cpus_mean"),
        "threads": e.get("threads"),
        "kwh_per_1k": units.kwh_per_1k(j) if e else None,
        "gco2e_per_1k": carbon.gco2e(units.kwh_per_1k(j)) if e and carbon else None,
        "provenance": e.get("provenance"),
        "sampler": e.get("sampler"),
        "gross_j_per_inference": e.get("gross_j_per_inference"),
        "idle_power_w": e.get("idle_power_w"),
        "modeled_j_per_inference": r.modeled_j_per_inference,
        "windows": e.get("windows"),
        "n_inferences": e.get("n_inferences"),
        "latency_ms_per_batch": e["latency_s_per_batch"] * 1e3 if e else None,
        "latency_p50_ms": _ms(e.get("latency_p50_s_per_batch")),
        "latency_p95_ms": _ms(e.get("latency_p95_s_per_batch")),
        "throughput_per_s": e.get("throughput_per_s"),
        "peak_rss_bytes": e.get("peak_rss_bytes"),
        "batch_size": e.get("batch_size"),
        "params": r.n_params,
        "macs_per_inference": r.macs_per_inference,
        "size_bytes": r.size_bytes,
        "memory_bytes": r.memory_bytes,
        "sparsity": r.sparsity,
        "screened": r.screened,
        "reused_from": r.reused_from,
        "host": r.host,
        "duration_s": r.duration_s,
        "error": r.error,
        "notes": "; ".join(r.notes),
        **generation.columns(r),  # a generative task's per-token figures (else none)
        **{f"param.{k}": v for k, v in sorted(r.params.items())},
    }


def _ratio_source(vs: dict[str, object]) -> str | None:
    """Where a trial's ratio repeatability term came from, or why there is none."""
    if not vs or not vs.get("pairs"):
        return None  # the baseline itself, or no paired figure
    source = vs.get("ratio_repeatability_source")
    if source is None:
        return "not considered (measured before ratios were widened): the pairs' interval only"
    return str(source)


def _ms(seconds: object) -> float | None:
    return float(seconds) * 1e3 if isinstance(seconds, int | float) else None


def trials_frame(result: SearchResult) -> pd.DataFrame:
    """One row per trial: parameters, accuracy, energy with provenance and CI, cost, status."""
    front_ids = {r.number for r in result.frontier}
    carbon = CarbonSettings(**result.info["carbon"]) if result.info.get("carbon") else None
    rows = [_row(r, front_ids, carbon) for r in result.trials]
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=COLUMNS)
    params = sorted(c for c in df.columns if c.startswith("param."))
    extra = [c for c in generation.COLUMNS if c in df.columns]
    return df[COLUMNS + extra + params]


def frontier_frame(result: SearchResult) -> pd.DataFrame:
    """The feasible Pareto frontier, cheapest first."""
    df = trials_frame(result)
    return df[df["pareto"]].sort_values("energy_j_per_inference").reset_index(drop=True)
