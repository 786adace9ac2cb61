"""Trials and frontier as pandas DataFrames (the CSV and the tables of the report)."""

from __future__ import annotations

import math

import pandas as pd

from compresslab import units
from compresslab.carbon import CarbonSettings
from compresslab.results import SearchResult, TrialRecord

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
    "batch_size",
    "params",
    "macs_per_inference",
    "size_bytes",
    "memory_bytes",
    "sparsity",
    "energy_ratio_vs_baseline",
    "screened",
    "reused_from",
    "host",
    "duration_s",
    "error",
    "notes",
]


def _row(
    r: TrialRecord, baseline_j: float, front_ids: set[int], carbon: CarbonSettings | None
) -> dict[str, object]:
    e = r.energy or {}
    j = r.energy_j_per_inference
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
        "ci95_j_per_inference": e.get("ci95_j_per_inference"),
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
        "batch_size": e.get("batch_size"),
        "params": r.n_params,
        "macs_per_inference": r.macs_per_inference,
        "size_bytes": r.size_bytes,
        "memory_bytes": r.memory_bytes,
        "sparsity": r.sparsity,
        "energy_ratio_vs_baseline": (j / baseline_j) if e and math.isfinite(baseline_j) else None,
        "screened": r.screened,
        "reused_from": r.reused_from,
        "host": r.host,
        "duration_s": r.duration_s,
        "error": r.error,
        "notes": "; ".join(r.notes),
        **{f"param.{k}": v for k, v in sorted(r.params.items())},
    }


def trials_frame(result: SearchResult) -> pd.DataFrame:
    """One row per trial: parameters, accuracy, energy with provenance and CI, cost, status."""
    base = result.baseline
    baseline_j = base.energy_j_per_inference if base else math.nan
    front_ids = {r.number for r in result.frontier}
    carbon = CarbonSettings(**result.info["carbon"]) if result.info.get("carbon") else None
    rows = [_row(r, baseline_j, front_ids, carbon) for r in result.trials]
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=COLUMNS)
    params = sorted(c for c in df.columns if c.startswith("param."))
    return df[COLUMNS + params]


def frontier_frame(result: SearchResult) -> pd.DataFrame:
    """The feasible Pareto frontier, cheapest first."""
    df = trials_frame(result)
    return df[df["pareto"]].sort_values("energy_j_per_inference").reset_index(drop=True)
