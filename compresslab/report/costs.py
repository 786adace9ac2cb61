"""Report blocks on what the search spent and what it saved by predicting.

- the search's own cost per part (set-up, building, recovery fine-tuning, evaluation,
  measurement, confirmation, the rest), so that users see where to cut;
- the variants not measured because the calibrated energy model predicted them dominated,
  each with its prediction, stated error and the trial that dominates it;
- the calibration itself: how well it predicts held-out variants, and its fitted costs.

The blocks are :mod:`compresslab.report.blocks`'.
"""

from __future__ import annotations

import math

from compresslab.records import CalibrationSummary, Prediction, SearchResult
from compresslab.report.blocks import Block, Bullets, Heading, Para, TableBlock, fmt_j
from compresslab.report.figures import search_cost_parts


def _j(j: float) -> str:
    return fmt_j(j)


def cost_part_blocks(result: SearchResult) -> list[Block]:
    """A table of the search's cost per part, largest first (nothing when not recorded)."""
    parts = search_cost_parts(result)
    if not parts:
        return []
    priced = all(p.energy_j is not None for p in parts)
    total_j = sum(p.energy_j or 0.0 for p in parts)
    total_wall = sum(p.wall_s for p in parts)
    rows = []
    for p in parts:
        share = (p.energy_j or 0.0) / total_j if priced and total_j > 0 else p.wall_s / total_wall
        rows.append(
            [
                p.label,
                f"{p.wall_s:,.1f}",
                "-" if math.isnan(p.cpu_s) else f"{p.cpu_s:,.1f}",
                _j(p.energy_j) if p.energy_j is not None else "-",
                f"{100 * share:.0f}%",
            ]
        )
    how = (
        "energy per part: its CPU-seconds x watts per core plus resident GB x watts per GB x "
        "its seconds, the estimate the session itself used (estimated); the rest is the "
        "session's total minus the parts"
        if priced
        else "time only: a counter sees the whole machine, so its energy cannot be split by part"
    )
    return [
        Para(f"Where it went, per part ({how}); cut the largest first:"),
        TableBlock(
            ["part", "wall s", "CPU s", "energy", "share"],
            rows,
            "lrrrr",
        ),
    ]


def prediction_blocks(result: SearchResult) -> list[Block]:
    """The variants predicted dominated, and the calibration behind the predictions."""
    blocks: list[Block] = []
    predicted = result.predicted
    prediction = result.info.prediction
    status = prediction.status if prediction is not None else None
    calibrations = result.info.calibrations
    if not predicted and not calibrations and not status:
        return blocks
    blocks.append(Heading("Prediction: variants not measured"))
    if not predicted:
        blocks.append(Para("No variant was predicted dominated: every feasible one was measured."))
    else:
        blocks.append(
            Para(
                f"{len(predicted)} variant(s) were not measured for energy: the energy model "
                "calibrated on this study's measured variants predicted that even the optimistic "
                "end of their prediction (predicted x (1 - stated error)) is dominated by a "
                "measured frontier variant. `compresslab measure RECIPE --trial N` measures one "
                "to check its prediction."
            )
        )
        blocks.append(
            Bullets([_predicted_item(r.number, r.variant, r.predicted) for r in predicted])
        )
    if status:
        blocks.append(Para(f"Prediction at the end of the last session: {status}."))
    for cal in calibrations.values():
        blocks.append(Para(_calibration_text(cal)))
    return blocks


def _predicted_item(number: int, variant: str, p: Prediction | None) -> str:
    p = p or Prediction(reason="")
    return (
        f"trial {number} ({variant}): accuracy {_num(p.accuracy):.4f}, "
        f"predicted {_j(_num(p.j_per_inference))} per inference "
        f"(±{100 * _num(p.error_rel):.0f}%, modeled, calibrated); dominated "
        f"by trial {p.dominated_by} ({_num(p.dominating_accuracy):.4f}, "
        f"{_j(_num(p.dominating_j_per_inference))})"
    )


def _num(value: float | None) -> float:
    return math.nan if value is None else value


def _calibration_text(cal: CalibrationSummary) -> str:
    machine = cal.machine
    loo = cal.loo
    held_out = (
        f"on each variant left out of the fit in turn, Spearman {loo.spearman:.2f} against "
        f"the measurements, relative error median {100 * loo.median_error_rel:.0f}%, 90th "
        f"percentile {100 * loo.error_rel:.0f}%"
        if loo is not None
        else "too few variants to test it on held-out ones"
    )
    from compresslab.modeled.calibration import UNITS as units

    shown = ", ".join(
        f"{_per_unit(v)} per {units.get(k, k)}"
        for k, v in cal.coefficients.items()
        if k in cal.identified
    )
    return (
        f"Energy model calibrated on {machine.get('host', '?')} "
        f"({machine.get('cpu_model', '?')}): {cal.n} measured variants; {held_out}. "
        f"Fitted costs (non-negative least squares on the operation counts): {shown}."
    )


def _per_unit(j: float) -> str:
    """Joules per unit with a prefix down to picojoules (``139 pJ``, ``5.56 mJ``)."""
    for scale, unit in ((1.0, "J"), (1e-3, "mJ"), (1e-6, "µJ"), (1e-9, "nJ")):
        if j >= scale:
            return f"{j / scale:.3g} {unit}"
    return f"{j / 1e-12:.3g} pJ"
