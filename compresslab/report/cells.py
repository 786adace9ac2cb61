"""One trial's figures as the report's table cells, and the table of variants made of them.

Shared by the report's sections (:mod:`.sections`) and the generative task's section
(:mod:`.generation`); it imports neither.
"""

from __future__ import annotations

import math

from compresslab import units
from compresslab.records import SearchResult, TrialRecord
from compresslab.report.blocks import TableBlock
from compresslab.report.figures import carbon_settings, energy_stars
from compresslab.report.text import given


def energy_cell(r: TrialRecord, unit: tuple[float, str]) -> str:
    """``1.23 ± 0.04 mJ`` in the table's unit."""
    if not math.isfinite(r.energy_j_per_inference):
        return "-"
    factor, name = unit
    return f"{r.energy_j_per_inference * factor:.3g} ± {r.ci95_j_per_inference * factor:.2g} {name}"


def ratio_cell(r: TrialRecord) -> str:
    """``0.42x [0.40, 0.44]`` from the trial's pairs; the baseline is the reference."""
    if r.is_baseline and r.complete:
        return "1x (reference)"
    vs = r.vs_baseline if r.ratio_vs_baseline is not None else None
    if vs is None:
        return "-"  # unpaired (an older study): a ratio across sessions is never shown
    return f"{vs.ratio:.2f}x [{vs.ci95_low:.2f}, {vs.ci95_high:.2f}]"


def accuracy_cell(r: TrialRecord) -> str:
    """``0.9850 [0.960, 0.990]``: the metric and its 95% interval."""
    if r.accuracy is None:
        return "-"
    if r.accuracy_ci95:
        lo, hi = r.accuracy_ci95
        return f"{r.accuracy:.4f} [{lo:.3f}, {hi:.3f}]"
    return f"{r.accuracy:.4f}"


def points(drop: float) -> str:
    """``0.50 points below the baseline`` for an accuracy drop (a fraction)."""
    if abs(drop) < 1e-12:
        return "the same as the baseline"
    where = "below" if drop > 0 else "above"
    return f"{abs(drop) * 100:.2f} points {where} the baseline"


def ratio_high(r: TrialRecord) -> float:
    """The upper end of the trial's ratio interval: confirmed, else the search's (inf: none)."""
    ratio = r.confirmed or r.vs_baseline
    return ratio.ci95_high if ratio is not None else math.inf


def _stars(n: int | None) -> str:
    return "★" * n + "☆" * (5 - n) if n else "-"


def _latency_cell(r: TrialRecord) -> str:
    e = r.energy
    if e is None:
        return "-"
    p50, p95 = e.latency_p50_s_per_batch, e.latency_p95_s_per_batch
    if math.isnan(p50) or math.isnan(p95):
        return "-"  # a measurement from before the percentiles were recorded
    return f"{p50 * 1e3:.3g}, {p95 * 1e3:.3g}"


def _size_cell(r: TrialRecord) -> str:
    size = r.profile.size_bytes
    return f"{size / 1e6:.3g}" if size else "-"


def variant_table(result: SearchResult, records: list[TrialRecord]) -> TableBlock:
    """A table of ``records``: accuracy, energy, latency, size, ratio, label, carbon, profile."""
    carbon = carbon_settings(result)
    stars = energy_stars(result)
    unit = units.energy_unit([r.energy_j_per_inference for r in records])
    rows = []
    for r in records:
        rows.append(
            [
                str(r.number),
                given(r.variant),
                accuracy_cell(r),
                energy_cell(r, unit),
                f"{units.wh_per_million(r.energy_j_per_inference):.3g}",
                _latency_cell(r),
                _size_cell(r),
                ratio_cell(r),
                _stars(stars.get(r.number)),
                r.provenance,
                f"{carbon.gco2e(units.kwh_per_million(r.energy_j_per_inference)):.3g}"
                if carbon
                else "-",
                f"{(r.profile.macs_per_inference or 0):,.0f}",
                f"{(r.profile.n_params or 0):,}",
            ]
        )
    return TableBlock(
        [
            "trial",
            "variant",
            "accuracy [95% CI]",
            f"energy / inference [{unit[1]}] (95% CI)",
            "Wh / million",
            "latency / batch p50, p95 [ms]",
            "size [MB]",
            "vs baseline (paired, 95% CI)",
            "label",
            "provenance",
            "gCO2e / million",
            "MACs / inference",
            "params",
        ],
        rows,
        "rlllrrrlllrrr",
    )


def frontier_table(result: SearchResult) -> TableBlock:
    """The feasible frontier, cheapest first."""
    return variant_table(result, result.frontier)
