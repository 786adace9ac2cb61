"""``report.md``: frontier table, baseline, best saving within tolerance, machine and sampler."""

from __future__ import annotations

import math

from compresslab import units
from compresslab.carbon import CarbonSettings
from compresslab.results import SearchResult, TrialRecord


def _fmt_j(j: float) -> str:
    if j >= 1:
        return f"{j:.3g} J"
    if j >= 1e-3:
        return f"{j * 1e3:.3g} mJ"
    return f"{j * 1e6:.3g} µJ"


def _energy_cell(r: TrialRecord) -> str:
    e = r.energy or {}
    ci = e.get("ci95_j_per_inference", math.nan)
    return f"{_fmt_j(r.energy_j_per_inference)} ± {_fmt_j(ci)}"


def _acc_cell(r: TrialRecord) -> str:
    if r.accuracy is None:
        return "-"
    if r.accuracy_ci95:
        lo, hi = r.accuracy_ci95
        return f"{r.accuracy:.4f} [{lo:.3f}, {hi:.3f}]"
    return f"{r.accuracy:.4f}"


def _points(drop: float) -> str:
    if abs(drop) < 1e-12:
        return "the same as the baseline"
    where = "below" if drop > 0 else "above"
    return f"{abs(drop) * 100:.2f} points {where} the baseline"


def _carbon(result: SearchResult) -> CarbonSettings | None:
    c = result.info.get("carbon")
    return CarbonSettings(**c) if c else None


def _carbon_cell(result: SearchResult, r: TrialRecord) -> str:
    c = _carbon(result)
    return f"{c.gco2e(r.kwh_per_1k):.3g}" if c else "-"


def frontier_table(result: SearchResult) -> str:
    """The frontier as a markdown table (also printed by the CLI)."""
    base = result.baseline
    base_j = base.energy_j_per_inference if base else math.nan
    lines = [
        "| trial | variant | accuracy [95% CI] | energy / inference (95% CI) | kWh / 1000 | "
        "vs baseline | provenance | gCO2e / 1000 | MACs / inference | params |",
        "|---:|---|---|---|---:|---:|---|---:|---:|---:|",
    ]
    for r in result.frontier:
        ratio = r.energy_j_per_inference / base_j if math.isfinite(base_j) else math.nan
        lines.append(
            f"| {r.number} | {r.variant} | {_acc_cell(r)} | {_energy_cell(r)} | "
            f"{r.kwh_per_1k:.3e} | {ratio:.2f}x | {r.provenance} | "
            f"{_carbon_cell(result, r)} | {(r.macs_per_inference or 0):,.0f} | "
            f"{(r.n_params or 0):,} |"
        )
    return "\n".join(lines)


def render_markdown(result: SearchResult) -> str:
    """The whole ``report.md``."""
    info = result.info
    base = result.baseline
    best = result.best_saving()
    out = [f"# compresslab report: {result.recipe_name}", ""]
    out.append(f"Task: {info.get('task', '-')}  ")
    out.append(
        f"Trials: {len(result.trials)} ({len(result.completed)} measured, "
        f"{len(result.screened)} screened out before measuring energy, "
        f"{len(result.failed)} failed); Optuna sampler `{info.get('optuna_sampler')}`, "
        f"seed {info.get('seed')}; study `{result.study_name}`  "
    )
    out.append(f"Accuracy tolerance: {result.tolerance} (minimum {result.min_accuracy:.4f})")
    out.append("")
    out.append("## Baseline")
    if base is not None:
        out.append(
            f"Uncompressed model (trial {base.number}): accuracy {_acc_cell(base)}, "
            f"{_energy_cell(base)} per inference ({base.provenance}), "
            f"{base.kwh_per_1k:.3e} kWh per 1000 inferences."
        )
    else:
        out.append("The baseline trial did not complete: see the failed trials below.")
    out.append("")
    out.append("## Best saving within the tolerance")
    if best is not None and base is not None and best.number != base.number:
        saving = 1 - best.energy_j_per_inference / base.energy_j_per_inference
        drop = (base.accuracy or 0) - (best.accuracy or 0)
        per_million = units.kwh_per_million(
            base.energy_j_per_inference - best.energy_j_per_inference
        )
        out.append(
            f"**{best.variant}** (trial {best.number}): {saving:.0%} less energy per inference "
            f"than the baseline ({_fmt_j(best.energy_j_per_inference)} vs "
            f"{_fmt_j(base.energy_j_per_inference)}), accuracy {best.accuracy:.4f} "
            f"({_points(drop)}); saves {per_million:.3g} kWh per "
            "million inferences"
            + (
                f" ({c.gco2e(per_million):.3g} gCO2e at {c.describe()})."
                if (c := _carbon(result))
                else "."
            )
        )
        ci_sum = (best.energy or {}).get("ci95_j_per_inference", 0) + (base.energy or {}).get(
            "ci95_j_per_inference", 0
        )
        if base.energy_j_per_inference - best.energy_j_per_inference <= ci_sum:
            out.append("")
            out.append(
                "The difference is within the two figures' confidence intervals: it may be noise."
            )
    elif base is not None:
        out.append("No variant within the tolerance used less energy than the baseline.")
    else:
        out.append("-")
    out.append("")
    out.append("## Pareto frontier (feasible variants)")
    out.append("")
    out.append(frontier_table(result) if result.frontier else "No feasible variant completed.")
    out.append("")
    out.append("![accuracy vs energy](pareto.png)")
    out.append("")
    out.append("## How energy was obtained")
    out.append(f"Sampler selection: {info.get('sampler_selection', '-')}  ")
    for k, v in (info.get("sampler_metadata") or {}).items():
        out.append(f"- {k}: {v}")
    out.append(
        f"- batch size: {info.get('batch_size')}; figures are per inference (one example), "
        "mean over repeated windows with a 95% confidence interval; net of idle power where "
        "the sampler sees the whole machine (trials.csv has gross and idle too)"
    )
    out.append(
        "- `modeled_j_per_inference` in trials.csv: the deterministic analytic figure "
        "(MACs and bytes x energy per operation), a ranking and a floor, not a measurement"
    )
    if (c := _carbon(result)) is not None:
        out.append(f"- carbon: {c.describe()}; kWh stays the primary figure")
    out.append("")
    out.append(
        "Provenance labels: `measured` (hardware counter), `integrated` (power readings "
        "integrated over time), `estimated` (activity times stated coefficients), "
        "`modeled` (counted operations times energy per operation)."
    )
    out.append("")
    if info.get("skipped_methods"):
        out.append("## Methods left out on this machine")
        for name, why in info["skipped_methods"].items():
            out.append(f"- {name}: {why}")
        out.append("")
    if result.failed:
        out.append("## Failed trials")
        for r in result.failed:
            out.append(f"- trial {r.number} ({r.variant}): {r.error or 'no reason recorded'}")
        out.append("")
    out.append("## Machine and versions")
    for k, v in (info.get("machine") or {}).items():
        out.append(f"- {k}: {v}")
    for k, v in (info.get("versions") or {}).items():
        out.append(f"- {k}: {v}")
    out.append(f"- recipe hash: {info.get('recipe_hash')}")
    out.append(f"- storage: `{result.storage}`")
    out.append("")
    out.append("Full per-trial data: [trials.csv](trials.csv).")
    return "\n".join(out) + "\n"
