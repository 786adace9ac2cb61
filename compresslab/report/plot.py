"""The Pareto plot: accuracy against energy per inference (one SI prefix), frontier highlighted."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from compresslab import units
from compresslab.records import SearchResult, TrialRecord

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: The legend of the frontier's points.
FRONTIER_LABEL = "Pareto frontier (decided within the tolerance)"
#: The legend of variants whose paired comparison with the baseline left them undecided.
UNDECIDED_LABEL = "undecided against the tolerance (not claimed within)"


def undecided_claim(r: TrialRecord) -> bool:
    """Whether ``r`` was compared with the baseline and left ``undecided``."""
    a = r.accuracy_vs_baseline
    return a is not None and a.decision == "undecided"


def _acc(r: TrialRecord) -> float:
    return math.nan if r.accuracy is None else r.accuracy


_MARKERS = {"measured": "o", "integrated": "s", "estimated": "^", "modeled": "D"}


def draw_pareto(result: SearchResult, ax: Axes) -> None:
    """Draw the Pareto plot of ``result`` on ``ax``.

    Variants with energy and accuracy CIs and markers by provenance, the feasible frontier
    (trial numbers beside it), the baseline and the accuracy tolerance.
    """
    done = [r for r in result.completed if r.reused_from is None]
    factor, unit = units.energy_unit([r.energy_j_per_inference for r in done])

    def acc(r: TrialRecord) -> float:
        return math.nan if r.accuracy is None else r.accuracy

    for prov in sorted({r.provenance for r in done}):
        pts = [r for r in done if r.provenance == prov]
        ys = [acc(r) for r in pts]
        lows = [r.accuracy_ci95[0] if r.accuracy_ci95 else y for r, y in zip(pts, ys, strict=True)]
        highs = [r.accuracy_ci95[1] if r.accuracy_ci95 else y for r, y in zip(pts, ys, strict=True)]
        ax.errorbar(
            [r.energy_j_per_inference * factor for r in pts],
            ys,
            xerr=[r.ci95_j_per_inference * factor for r in pts],
            yerr=[
                [max(0.0, y - lo) for y, lo in zip(ys, lows, strict=True)],
                [max(0.0, hi - y) for y, hi in zip(ys, highs, strict=True)],
            ],
            fmt=_MARKERS.get(prov, "o"),
            color="0.55",
            ecolor="0.82",
            markersize=5,
            label=f"variants ({prov})",
        )
    # Compared with the baseline on the same examples but not decided: never called within.
    undecided = [r for r in done if undecided_claim(r)]
    if undecided:
        ax.scatter(
            [r.energy_j_per_inference * factor for r in undecided],
            [acc(r) for r in undecided],
            facecolors="none",
            edgecolors="tab:orange",
            linewidths=1.5,
            s=110,
            zorder=3,
            label=UNDECIDED_LABEL,
        )
    front = result.frontier
    if front:
        xs = [r.energy_j_per_inference * factor for r in front]
        ys = [acc(r) for r in front]
        ax.step(xs, ys, where="post", color="tab:green", linewidth=1.5)
        ax.scatter(xs, ys, color="tab:green", zorder=3, s=36, label=FRONTIER_LABEL)
        for r, x, y in zip(front, xs, ys, strict=True):
            ax.annotate(
                str(r.number), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8
            )
    base = result.baseline
    if base is not None:
        ax.scatter(
            [base.energy_j_per_inference * factor],
            [acc(base)],
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
    ax.set_xlabel(f"energy per inference [{unit}] ({provs})")
    ax.set_ylabel(f"{result.info.metric} (held-out split)")
    ax.set_title(f"{result.recipe_name}: accuracy vs energy")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")


def _figure(width_in: float, height_in: float) -> Figure:
    # A bare Figure, not pyplot: writing a report never changes the process's backend (a
    # notebook keeps showing inline figures after a search).
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), dpi=130)


def pareto_plot(result: SearchResult, path: Path) -> Path:
    """Write ``pareto.png`` (see :func:`draw_pareto`)."""
    fig = _figure(7.5, 5)
    draw_pareto(result, fig.add_subplot())
    fig.tight_layout()
    fig.savefig(path)
    return path


def hypervolume_plot(result: SearchResult, path: Path) -> Path:
    """Write ``hypervolume.png``: the feasible front's hypervolume after each trial."""
    from compresslab.report.figures import hypervolume_curve

    curve = hypervolume_curve(result)
    fig = _figure(7.5, 3.2)
    ax = fig.add_subplot()
    if curve:
        ax.step([n for n, _ in curve], [hv for _, hv in curve], where="post", color="tab:blue")
    ax.set_xlabel("trial")
    ax.set_ylabel("hypervolume [accuracy x J]")
    ax.set_title(f"{result.recipe_name}: hypervolume of the feasible front over trials")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    return path


def pareto_html(result: SearchResult, path: Path, *, plotly_js: str | None = None) -> Path:
    """Write ``pareto.html``: an interactive plotly version of the Pareto plot.

    Args:
        result: the search.
        path: where to write it.
        plotly_js: a path (relative to the page) of plotly's script to load; ``None`` inlines
            the script (about 4.7 MB) to make the page self-contained.
    """
    import plotly.graph_objects as go

    done = [r for r in result.completed if r.reused_from is None]
    front = {r.number for r in result.frontier}
    symbols = {
        "measured": "circle",
        "integrated": "square",
        "estimated": "triangle-up",
        "modeled": "diamond",
    }
    factor, unit = units.energy_unit([r.energy_j_per_inference for r in done])
    fig = go.Figure()
    for prov in sorted({r.provenance for r in done}):
        pts = [r for r in done if r.provenance == prov]
        fig.add_trace(
            go.Scatter(
                x=[r.energy_j_per_inference * factor for r in pts],
                y=[_acc(r) for r in pts],
                error_x={
                    "type": "data",
                    "array": [r.ci95_j_per_inference * factor for r in pts],
                },
                mode="markers",
                marker={
                    "symbol": symbols.get(prov, "circle"),
                    "size": [12 if r.number in front else 8 for r in pts],
                    "color": ["green" if r.number in front else "gray" for r in pts],
                    "line": {
                        "width": [2 if undecided_claim(r) else 0 for r in pts],
                        "color": "orange",
                    },
                },
                name=f"{prov}",
                text=[
                    f"trial {r.number}: {r.variant}"
                    + (" (undecided: not claimed within)" if undecided_claim(r) else "")
                    for r in pts
                ],
                hovertemplate="%{text}<br>accuracy %{y:.4f}<br>%{x:.3g} "
                + unit
                + "<extra></extra>",
            )
        )
    fig.add_hline(
        y=result.min_accuracy,
        line_dash="dash",
        line_color="orange",
        annotation_text=f"tolerance ({result.tolerance})",
    )
    fig.update_layout(
        title=(
            f"{result.recipe_name}: accuracy vs energy (green: frontier decided within the "
            "tolerance; orange ring: undecided)"
        ),
        xaxis_title=f"energy per inference [{unit}]",
        yaxis_title=result.info.metric,
        template="plotly_white",
    )
    fig.write_html(path, include_plotlyjs=plotly_js if plotly_js else True, full_html=True)
    return path


def parallel_plot(result: SearchResult, path: Path) -> Path:
    """Write ``parallel.png``: every measured variant as a line across its parameters.

    Each axis is one searched parameter (categories in their order of appearance, numbers
    scaled to their range), then accuracy and energy relative to the baseline; lines are
    coloured by energy, the frontier drawn thick.
    """
    from matplotlib import cm
    from matplotlib.figure import Figure

    done = [r for r in result.completed if r.reused_from is None]
    keys = sorted({k for r in done for k in r.params})
    front = {r.number for r in result.frontier}
    fig = Figure(figsize=(max(6.0, 1.3 * (len(keys) + 2)), 4.2))
    ax = fig.add_subplot()
    columns: list[list[float]] = []
    labels: list[str] = []
    for key in keys:
        values = [r.params.get(key, "-") for r in done]
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            nums = [float(v) for v in values]
            lo, hi = min(nums), max(nums)
            columns.append([(v - lo) / (hi - lo) if hi > lo else 0.5 for v in nums])
        else:
            order = list(dict.fromkeys(str(v) for v in values))
            columns.append([order.index(str(v)) / max(len(order) - 1, 1) for v in values])
        labels.append(key)
    energy = [r.ratio_vs_baseline or r.energy_j_per_inference for r in done]
    for name, values in (("accuracy", [r.accuracy or 0.0 for r in done]), ("energy", energy)):
        lo, hi = min(values, default=0.0), max(values, default=1.0)
        columns.append([(v - lo) / (hi - lo) if hi > lo else 0.5 for v in values])
        labels.append(name)
    e_lo, e_hi = min(energy, default=0.0), max(energy, default=1.0)
    xs = list(range(len(labels)))
    for i, r in enumerate(done):
        shade = (energy[i] - e_lo) / (e_hi - e_lo) if e_hi > e_lo else 0.5
        ax.plot(
            xs,
            [col[i] for col in columns],
            color=cm.viridis(shade),
            linewidth=2.2 if r.number in front else 0.8,
            alpha=0.9 if r.number in front else 0.5,
        )
    ax.set_xticks(xs, labels, rotation=20, ha="right", fontsize=8)
    ax.set_yticks([0, 1], ["low / first", "high / last"], fontsize=8)
    ax.set_title(f"{result.recipe_name}: parameters of every measured variant (thick: frontier)")
    fig.tight_layout()
    fig.savefig(path)
    return path
