"""Figures derived from a search for the report: labels, projections, the search's own cost.

Pure functions of a :class:`~compresslab.results.SearchResult`; nothing is measured here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from compresslab import units
from compresslab.carbon import CarbonSettings
from compresslab.results import SearchResult, TrialRecord

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
    proj = result.info.get("projection") or {}
    rate = float(proj.get("requests_per_s", 10.0))
    price = float(proj.get("price_per_kwh", 0.15))
    carbon = _carbon(result)
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


def _carbon(result: SearchResult) -> CarbonSettings | None:
    c = result.info.get("carbon")
    return CarbonSettings(**c) if c else None


@dataclass(frozen=True)
class SearchCost:
    """The energy the search itself spent, and when the best variant pays it back."""

    energy_j: float
    provenance: str
    sessions: int
    saving_j_per_inference: float | None
    break_even_inferences: float | None


def search_cost(result: SearchResult) -> SearchCost | None:
    """Energy of every session of the search (set-up, builds, evaluation, measurement).

    The break-even count is the number of inferences served by the best variant within the
    tolerance, instead of the baseline, after which its saving exceeds what the search spent.
    """
    sessions = result.info.get("search_energy") or []
    if not sessions:
        return None
    energy_j = sum(float(s["energy_j"]) for s in sessions)
    provs = sorted({str(s["provenance"]) for s in sessions})
    base, best = result.baseline, result.best_saving()
    saving = None
    break_even = None
    if base is not None and best is not None:
        saving = base.energy_j_per_inference - best.energy_j_per_inference
        if saving > 0:
            break_even = energy_j / saving
    return SearchCost(energy_j, "+".join(provs), len(sessions), saving, break_even)


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
