"""Carbon: a separate step after energy. kWh stays the primary figure.

gCO2e = IT energy [kWh] x PUE x grid carbon intensity [gCO2e/kWh]. The PUE (power usage
effectiveness of the facility) defaults to 1.0 and is always stated with the figure.

The offline table holds annual average intensities of electricity generation by country or
region for 2023, rounded, approximately as published in Ember's "Yearly electricity data"
(ember-energy.org). They are averages: the marginal intensity at the hour a model runs can
differ by a factor of two or more. For decisions, set ``carbon.intensity_g_per_kwh`` in the
recipe from your provider's or grid operator's figure.
"""

from __future__ import annotations

from dataclasses import dataclass

from compresslab import units
from compresslab.errors import RecipeError

#: Source of :data:`INTENSITY_G_PER_KWH`.
INTENSITY_SOURCE = "Ember, Yearly electricity data, 2023 annual averages (rounded, approximate)"
INTENSITY_YEAR = 2023

#: Grid carbon intensity in gCO2e per kWh by ISO country code or region.
INTENSITY_G_PER_KWH: dict[str, float] = {
    "WORLD": 480,
    "EU": 245,
    "US": 370,
    "CN": 580,
    "IN": 710,
    "JP": 485,
    "DE": 380,
    "FR": 55,
    "GB": 240,
    "SE": 40,
    "PL": 660,
    "CA": 170,
    "BR": 100,
    "AU": 550,
}


@dataclass(frozen=True)
class CarbonSettings:
    """How energy becomes carbon: an intensity with its source, and a PUE."""

    region: str
    intensity_g_per_kwh: float
    source: str
    pue: float = 1.0

    def gco2e(self, energy_kwh: float) -> float:
        """Grams of CO2e for ``energy_kwh`` of IT energy."""
        return units.gco2e(energy_kwh, intensity_g_per_kwh=self.intensity_g_per_kwh, pue=self.pue)

    def describe(self) -> str:
        """E.g. ``480 gCO2e/kWh (WORLD, Ember ... 2023), PUE 1.0``."""
        return (
            f"{self.intensity_g_per_kwh:g} gCO2e/kWh ({self.region}, {self.source}), "
            f"PUE {self.pue:g}"
        )


def carbon_settings(
    *, region: str = "WORLD", intensity_g_per_kwh: float | None = None, pue: float = 1.0
) -> CarbonSettings:
    """The intensity for ``region`` from the table, or a given one (stated as user-provided)."""
    if intensity_g_per_kwh is not None:
        return CarbonSettings(region, intensity_g_per_kwh, "set in the recipe", pue)
    key = region.upper()
    if key not in INTENSITY_G_PER_KWH:
        raise RecipeError(
            f"no carbon intensity for region '{region}' in the offline table: use one of "
            f"{', '.join(INTENSITY_G_PER_KWH)}, or set carbon.intensity_g_per_kwh",
            field="carbon.region",
        )
    return CarbonSettings(key, INTENSITY_G_PER_KWH[key], INTENSITY_SOURCE, pue)
