"""Figures derived from a search for the report: labels, projections, the search's own cost.

Pure functions of a :class:`~compresslab.records.SearchResult`; nothing is measured here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from compresslab import units
from compresslab.carbon import CarbonSettings
from compresslab.records import PartTime, SearchResult, TrialRecord

SECONDS_PER_YEAR = 365.25 * 24 * 3600


def energy_stars(result: SearchResult) -> dict[int, int]:
    """1 to 5 stars per measured variant, within this study (in the spirit of AI Energy Score).

    The range of energy per inference of the study's distinct measured variants is cut into
    five equal bands: the cheapest band gets 5 stars, the most expensive 1.
    """
    done = [r for r in result.completed if r.reused_from is None]
    if not done:
        return {}
    energies = [r.energy_j_per_inference for r in done]
    lo, hi = min(energies), max(energies)
    if hi <= lo:
        return {r.number: 5 for r in done}
    out = {}
    for r in done:
        band = min(4, int((hi - r.energy_j_per_inference) / (hi - lo) * 5))
        out[r.number] = band + 1
    return out


@dataclass(frozen=True)
class Projection:
    """What serving a variant costs at scale (per million inferences, and per year)."""

    kwh_per_million: float
    gco2e_per_million: float
    cost_per_million: float
    inferences_per_year: float
    kwh_per_year: float
    kgco2e_per_year: float
    cost_per_year: float


def project(r: TrialRecord, result: SearchResult) -> Projection | None:
    """The projection for a measured variant at the report's request rate and price."""
    if not r.complete:
        return None
    rate = result.info.projection.requests_per_s
    price = result.info.projection.price_per_kwh
    carbon = carbon_settings(result)
    kwh_m = units.kwh_per_million(r.energy_j_per_inference)
    per_year = rate * SECONDS_PER_YEAR
    kwh_y = units.j_to_kwh(r.energy_j_per_inference * per_year)
    g = carbon.gco2e if carbon else (lambda _kwh: math.nan)
    return Projection(
        kwh_per_million=kwh_m,
        gco2e_per_million=g(kwh_m),
        cost_per_million=kwh_m * price,
        inferences_per_year=per_year,
        kwh_per_year=kwh_y,
        kgco2e_per_year=g(kwh_y) / 1000,
        cost_per_year=kwh_y * price,
    )


def carbon_settings(result: SearchResult) -> CarbonSettings | None:
    """The study's carbon intensity settings (None: the recipe set none)."""
    c = result.info.carbon
    if c is None:
        return None
    return CarbonSettings(c.region, c.intensity_g_per_kwh, c.source, c.pue)


def plural(unit: str) -> str:
    """``inference`` -> ``inferences``, ``generated token`` -> ``generated tokens``."""
    return unit if unit.endswith("s") else f"{unit}s"


@dataclass(frozen=True)
class SearchCost:
    """The energy the search itself spent, and when the best variant pays it back."""

    energy_j: float
    provenance: str
    sessions: int
    saving_j_per_inference: float | None
    break_even_inferences: float | None
    #: What one inference is to the task's users ("inferences", "requests" ...).
    unit: str = "inferences"
    #: Break-even in generated tokens, for a task that declares tokens per inference.
    break_even_tokens: float | None = None

    def break_even_text(self) -> str:
        """``1,234 inferences`` (``1,234 requests (56,789 tokens)`` for a generative task)."""
        if self.break_even_inferences is None:
            return "-"
        text = f"{self.break_even_inferences:,.0f} {self.unit}"
        if self.break_even_tokens is not None:
            text += f" ({self.break_even_tokens:,.0f} tokens)"
        return text


def search_cost(result: SearchResult) -> SearchCost | None:
    """Energy of every session of the search (set-up, builds, evaluation, measurement).

    The break-even count is the number of inferences served by the best variant within the
    tolerance, instead of the baseline, after which its saving exceeds what the search spent.
    """
    sessions = result.info.sessions
    if not sessions:
        return None
    energy_j = sum(s.energy_j for s in sessions)
    provs = sorted({s.provenance for s in sessions})
    base, best = result.baseline, result.best_saving()
    saving = None
    break_even = None
    if base is not None and best is not None:
        saving = base.energy_j_per_inference - best.energy_j_per_inference
        if saving > 0:
            break_even = energy_j / saving
    unit = plural(result.info.unit or "inference")
    tokens = result.info.tokens_per_inference
    tokens_total = break_even * tokens if break_even is not None and tokens else None
    return SearchCost(
        energy_j, "+".join(provs), len(sessions), saving, break_even, unit, tokens_total
    )


#: The parts of the search's cost, in the order a report lists them, with their names.
COST_PARTS = {
    "setup": "task set-up (storage, model and data, baseline accuracy)",
    "build": "building variants (pruning, quantizing)",
    "finetune": "recovery fine-tuning",
    "evaluate": "evaluation (screening, accuracy, profile, operation counts, prediction)",
    "measure": "energy measurement (paired with the baseline)",
    "confirm": "confirming the frontier after the search",
    "other": "the rest (Optuna's sampler, storage, repeats reused, failed trials)",
}


@dataclass(frozen=True)
class CostPart:
    """What one part of the search cost: time, and energy where it can be attributed."""

    name: str
    wall_s: float
    cpu_s: float
    energy_j: float | None

    @property
    def label(self) -> str:
        """The part in words."""
        return COST_PARTS.get(self.name, self.name)


def search_cost_parts(result: SearchResult) -> list[CostPart]:
    """The search's cost per part (:data:`COST_PARTS`), largest energy (or time) first.

    Trials record wall and CPU seconds per part of their evaluation, sessions those of their
    set-up and confirmation. Energy is attributed only when every session was priced by the
    ``estimate`` sampler with one set of coefficients: then a part's energy is its CPU-seconds
    x watts per core plus resident GB x watts per GB x its wall seconds, the same estimate as
    the session's own (``estimated``); ``other`` is the session total minus the parts. A
    measured session (a counter sees the whole machine) cannot be split: time only.
    """
    sessions = result.info.sessions
    totals: dict[str, dict[str, float]] = {}

    def add(parts: Mapping[str, PartTime]) -> None:
        for name, part in parts.items():
            into = totals.setdefault(name, {"wall_s": 0.0, "cpu_s": 0.0, "gb_s": 0.0})
            into["wall_s"] += part.wall_s
            into["cpu_s"] += part.cpu_s
            into["gb_s"] += part.rss_gb * part.wall_s

    for r in result.trials:
        add(r.parts)
    for s in sessions:
        add(s.parts)
    if not totals:
        return []
    coefficients = {json_key(s.coefficients) for s in sessions}
    priced = (
        len(coefficients) == 1
        and None not in coefficients
        and all(s.provenance == "estimated" for s in sessions)
    )
    coef = dict(sessions[0].coefficients or {}) if priced else {}
    out = []
    for name, t in totals.items():
        energy = (
            t["cpu_s"] * coef["watts_per_core"] + t["gb_s"] * coef["watts_per_gb"]
            if priced
            else None
        )
        out.append(CostPart(name, t["wall_s"], t["cpu_s"], energy))
    wall_total = sum(s.duration_s for s in sessions)
    rest_wall = wall_total - sum(p.wall_s for p in out)
    if priced:
        rest_j = sum(s.energy_j for s in sessions) - sum(p.energy_j or 0 for p in out)
        out.append(CostPart("other", max(0.0, rest_wall), math.nan, max(0.0, rest_j)))
    elif rest_wall > 0:
        out.append(CostPart("other", rest_wall, math.nan, None))
    return sorted(out, key=lambda p: -(p.energy_j if p.energy_j is not None else p.wall_s))


def json_key(value: Any) -> str | None:
    """A hashable stand-in for a small JSON value (None stays None)."""
    return None if value is None else json.dumps(value, sort_keys=True)


def hypervolume_curve(result: SearchResult) -> list[tuple[int, float]]:
    """Hypervolume of the feasible front after each trial (accuracy up, energy down).

    The reference point is (minimum accepted accuracy, 1.1 x the most expensive measured
    variant), so the figure grows as the search finds cheaper or more accurate variants.
    """
    done = sorted((r for r in result.completed if r.reused_from is None), key=lambda r: r.number)
    if not done:
        return []
    ref_e = 1.1 * max(r.energy_j_per_inference for r in done)
    ref_a = result.min_accuracy
    pts: list[tuple[float, float]] = []
    out = []
    for r in done:
        if r.feasible and r.accuracy is not None:
            pts.append((r.energy_j_per_inference, r.accuracy))
        out.append((r.number, _hv2d(pts, ref_e, ref_a)))
    return out


def _hv2d(points: list[tuple[float, float]], ref_e: float, ref_a: float) -> float:
    """Area dominated by ``points`` (energy, accuracy) up to the reference point."""
    hv = 0.0
    best_acc = ref_a
    for e, a in sorted(points):
        if a > best_acc:
            hv += (ref_e - e) * (a - best_acc)
            best_acc = a
    return hv


def least_violating(result: SearchResult, k: int = 5) -> list[TrialRecord]:
    """When no variant is feasible: the measured ones closest to the accuracy tolerance."""
    done = [r for r in result.completed if r.reused_from is None]
    return sorted(done, key=lambda r: (-(r.accuracy or 0.0), r.energy_j_per_inference))[:k]
