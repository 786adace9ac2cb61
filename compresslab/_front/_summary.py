"""How a :class:`~compresslab.Study` shows itself: one line in a terminal, a summary in Jupyter.

Every string that came from a recipe or a study (names, descriptions, variants) is escaped
where it enters the HTML.
"""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from compresslab.recipe import Recipe
    from compresslab.records import SearchResult

#: The frontier's columns in the Jupyter summary.
SUMMARY_COLUMNS = [
    "trial",
    "variant",
    "accuracy",
    "energy_j_per_inference",
    "ci95_j_per_inference",
    "provenance",
    "energy_ratio_vs_baseline",
    "latency_p50_ms",
    "latency_p95_ms",
    "size_bytes",
]


def best_line(result: SearchResult) -> str | None:
    """The best saving within the tolerance in words, with its paired ratio (None: none)."""
    best = result.best_saving()
    base = result.baseline
    if best is None:
        return None
    ratio = ""
    if base is not None and best is not base and best.ratio_vs_baseline is not None:
        vs = best.confirmed or best.vs_baseline
        assert vs is not None
        what = "confirmed" if best.confirmed else "paired, in the search"
        ratio = (
            f", {vs.ratio:.2f}x the baseline's energy ({what}; 95% CI "
            f"{vs.ci95_low:.2f} to {vs.ci95_high:.2f})"
        )
        if vs.ci95_high >= 1:
            ratio += " (the interval reaches 1: not a clear saving)"
    return (
        f"trial {best.number} {best.variant}: accuracy {_fmt(best.accuracy)}, "
        f"{_fmt(best.energy_j_per_inference)} J/inference ({best.provenance}){ratio}"
    )


def summary_text(name: str, result: SearchResult) -> str:
    """``repr`` of a study: its counts, its frontier's size and its best saving."""
    best = best_line(result)
    return (
        f"<Study {name!r}: {result.counts()}; {len(result.frontier)} on the "
        f"frontier; best: {best or 'none within the tolerance'}>"
    )


def summary_html(recipe: Recipe, result: SearchResult, frontier: pd.DataFrame) -> str:
    """The Jupyter summary: baseline, tolerance, best saving and the frontier's table."""
    e = html.escape
    base = result.baseline
    about = f": {e(recipe.description)}" if recipe.description else ""
    lines = [f"<b>Study {e(recipe.name)}</b>{about}"]
    lines.append(e(result.counts()) + f"; storage <code>{e(result.storage)}</code>")
    if base is not None:
        ci = base.ci95_j_per_inference
        lines.append(
            f"baseline: {e(result.info.metric)} {_fmt(base.accuracy)}, "
            f"{_fmt(base.energy_j_per_inference)} &plusmn; {_fmt(ci)} J/inference "
            f"({e(base.provenance)})"
        )
    lines.append(f"tolerance: {e(result.tolerance)} (minimum {_fmt(result.min_accuracy)})")
    best = best_line(result)
    lines.append("best within the tolerance: " + (e(best) if best else "none"))
    table = (
        _in_units(frontier[SUMMARY_COLUMNS]).to_html(
            index=False, escape=True, float_format=_fmt, na_rep="-", border=0
        )
        if len(frontier)
        else "<p>No feasible variant yet.</p>"
    )
    return "<div>" + "<br>".join(lines) + "<br>Frontier:" + table + "</div>"


def _in_units(frame: pd.DataFrame) -> pd.DataFrame:
    """Energy columns in one SI prefix (as the report's tables), size in MB, for reading."""
    from compresslab import units

    factor, unit = units.energy_unit(list(frame["energy_j_per_inference"]))
    out = frame.copy()
    out["energy_j_per_inference"] = out["energy_j_per_inference"] * factor
    out["ci95_j_per_inference"] = out["ci95_j_per_inference"] * factor
    out["size_bytes"] = out["size_bytes"] / 1e6
    return out.rename(
        columns={
            "energy_j_per_inference": f"energy / inference [{unit}]",
            "ci95_j_per_inference": f"95% CI [{unit}]",
            "energy_ratio_vs_baseline": "vs baseline (paired)",
            "size_bytes": "size [MB]",
        }
    )


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else html.escape(str(value))
