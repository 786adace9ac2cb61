"""The Pareto plot: accuracy against kWh per 1000 inferences, frontier highlighted."""

from __future__ import annotations

import math
from pathlib import Path

from compresslab import units
from compresslab.results import SearchResult, TrialRecord


def _acc(r: TrialRecord) -> float:
    return math.nan if r.accuracy is None else r.accuracy


_MARKERS = {"measured": "o", "integrated": "s", "estimated": "^", "modeled": "D"}


def pareto_plot(result: SearchResult, path: Path) -> Path:
    """Write ``pareto.png``: every completed trial, CI error bars, the frontier as a step line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5), dpi=130)
    done = [r for r in result.completed if r.reused_from is None]
    for prov in sorted({r.provenance for r in done}):
        pts = [r for r in done if r.provenance == prov]
        ax.errorbar(
            [units.kwh_per_1k(r.energy_j_per_inference) for r in pts],
            [_acc(r) for r in pts],
            xerr=[units.kwh_per_1k(r.energy["ci95_j_per_inference"]) for r in pts],  # type: ignore[index]
            fmt=_MARKERS.get(prov, "o"),
            color="0.6",
            ecolor="0.8",
            markersize=5,
            label=f"variants ({prov})",
        )
    front = result.frontier
    if front:
        xs = [units.kwh_per_1k(r.energy_j_per_inference) for r in front]
        ys = [_acc(r) for r in front]
        ax.step(xs, ys, where="post", color="tab:green", linewidth=1.5)
        ax.scatter(xs, ys, color="tab:green", zorder=3, s=36, label="Pareto frontier (feasible)")
    base = result.baseline
    if base is not None:
        ax.scatter(
            [units.kwh_per_1k(base.energy_j_per_inference)],
            [_acc(base)],
            marker="*",
            s=180,
            color="tab:red",
            zorder=4,
            label="baseline (uncompressed)",
        )
    ax.axhline(
        result.min_accuracy,
        color="tab:orange",
        linestyle="--",
        linewidth=1,
        label=f"accuracy tolerance ({result.tolerance})",
    )
    provs = ", ".join(sorted({r.provenance for r in done})) or "-"
    ax.set_xlabel(f"energy per 1000 inferences [kWh] ({provs})")
    ax.set_ylabel(f"{result.info.get('metric', 'accuracy')} (held-out split)")
    ax.set_title(f"{result.recipe_name}: accuracy vs energy")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
