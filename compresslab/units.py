"""The one place where energy, power and carbon units are converted.

Names carry their unit everywhere else in the package (``energy_j``, ``duration_s``,
``kwh_per_1k``); conversions go through these functions so that no factor is written twice.
"""

from __future__ import annotations

J_PER_WH = 3600.0
J_PER_KWH = 3_600_000.0
UJ_PER_J = 1_000_000.0
MJ_PER_J = 1_000.0  # millijoules per joule (NVML counts millijoules)


def uj_to_j(energy_uj: float) -> float:
    """Convert microjoules (RAPL ``energy_uj``) to joules."""
    return energy_uj / UJ_PER_J


def mj_to_j(energy_mj: float) -> float:
    """Convert millijoules (NVML total energy) to joules."""
    return energy_mj / MJ_PER_J


def mw_to_w(power_mw: float) -> float:
    """Convert milliwatts (NVML power readings and limits) to watts."""
    return power_mw / 1000.0


def j_to_wh(energy_j: float) -> float:
    """Convert joules to watt-hours."""
    return energy_j / J_PER_WH


def j_to_kwh(energy_j: float) -> float:
    """Convert joules to kilowatt-hours."""
    return energy_j / J_PER_KWH


def kwh_to_j(energy_kwh: float) -> float:
    """Convert kilowatt-hours to joules."""
    return energy_kwh * J_PER_KWH


def kwh_per_1k(energy_j_per_inference: float) -> float:
    """Kilowatt-hours per 1000 inferences, from joules per inference."""
    return j_to_kwh(energy_j_per_inference * 1000.0)


def kwh_per_million(energy_j_per_inference: float) -> float:
    """Kilowatt-hours per million inferences, from joules per inference."""
    return j_to_kwh(energy_j_per_inference * 1_000_000.0)


def gco2e(energy_kwh: float, *, intensity_g_per_kwh: float, pue: float = 1.0) -> float:
    """Grams of CO2-equivalent for an IT energy, a grid intensity and a facility PUE."""
    return energy_kwh * pue * intensity_g_per_kwh
