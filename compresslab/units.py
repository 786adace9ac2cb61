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


#: SI prefixes for energy per inference, smallest first: (factor from joules, unit).
_J_PREFIXES = ((1e9, "nJ"), (1e6, "µJ"), (1e3, "mJ"), (1.0, "J"))


def energy_unit(values_j: list[float] | tuple[float, ...]) -> tuple[float, str]:
    """One SI prefix for a table column or an axis of joules: ``(factor, unit)``.

    The prefix that puts the largest finite value between 1 and 1000 (``J`` from 1 J up),
    so every row of one table (and one axis) reads in the same unit.
    """
    finite = [abs(v) for v in values_j if v == v and abs(v) != float("inf")]
    top = max(finite, default=1.0)
    for factor, unit in _J_PREFIXES:
        if top * factor < 1000:
            return factor, unit
    return 1.0, "J"


def format_energy(value_j: float, unit: tuple[float, str] | None = None, *, digits: int = 3) -> str:
    """``0.00123`` -> ``"1.23 mJ"`` (in ``unit`` when given, else the value's own prefix)."""
    if value_j != value_j or abs(value_j) == float("inf"):
        return "-"
    factor, name = unit or energy_unit([value_j])
    return f"{value_j * factor:.{digits}g} {name}"


def wh_per_million(energy_j_per_inference: float) -> float:
    """Watt-hours per million inferences, from joules per inference."""
    return j_to_wh(energy_j_per_inference * 1_000_000.0)
