"""CPU estimator: process CPU-seconds times watts per busy core, plus memory power per GB.

This is the tier of last resort, for machines with no readable energy counter (most virtual
machines and CI runners). Every figure it returns is labelled ``estimated`` and its coefficients'
source is stated in :meth:`EstimateSampler.metadata`.

Defaults, and why:

- ``watts_per_core = 7.0``: package TDP divided by cores of typical 2020s server parts running
  flat out (Xeon Platinum 8380: 270 W / 40 cores = 6.75 W; EPYC 7763: 280 W / 64 = 4.4 W;
  desktop Core i7-12700: 125 W / 12 = 10.4 W). Real per-core power varies by at least +/-50%
  with the part, frequency and load; the figure ranks variants on one machine far better than it
  states their absolute energy.
- ``watts_per_gb = 0.375``: about 3 W per 8 GB DDR4 module under load, the figure CodeCarbon
  also uses; applied to the process's resident memory for the window's wall time.
"""

from __future__ import annotations

import time

from compresslab.energy.base import (
    Availability,
    ComponentEnergy,
    Provenance,
    Reading,
    check_reading,
)
from compresslab.errors import MeasurementError
from compresslab.machine import cpu_model, logical_cpus, rss_bytes

DEFAULT_WATTS_PER_CORE = 7.0
DEFAULT_WATTS_PER_GB = 0.375
#: Stated systematic uncertainty of the default coefficients (relative, one side).
DEFAULT_SYSTEMATIC_REL = 0.5
# Linux accounts CPU time per scheduler tick on many kernels; 10 ms is a safe upper bound.
_PROCESS_TIME_TICK_S = 0.01


class EstimateSampler:
    """Estimated energy of this process from its CPU time and resident memory.

    Args:
        watts_per_core: watts per busy core (default :data:`DEFAULT_WATTS_PER_CORE`).
        watts_per_gb: watts per GB resident (default :data:`DEFAULT_WATTS_PER_GB`).
        allow_idle: accept a window in which the process used no CPU time (0 J of CPU): the
            host part of a GPU measurement, whose idle windows sleep. Alone, such a window
            means the window was shorter than the CPU-time tick, and is an error.
    """

    name = "estimate"
    provenance = Provenance.ESTIMATED
    scope = "process"
    #: Systematic uncertainty of absolute joules (coefficients), stated with every figure.
    systematic_rel = DEFAULT_SYSTEMATIC_REL

    def __init__(
        self,
        *,
        watts_per_core: float | None = None,
        watts_per_gb: float | None = None,
        allow_idle: bool = False,
    ) -> None:
        self._allow_idle = allow_idle
        self._from_recipe = watts_per_core is not None or watts_per_gb is not None
        self.watts_per_core = DEFAULT_WATTS_PER_CORE if watts_per_core is None else watts_per_core
        self.watts_per_gb = DEFAULT_WATTS_PER_GB if watts_per_gb is None else watts_per_gb
        self._t0: tuple[float, float] | None = None

    def available(self) -> Availability:
        """Always available: it needs only the process's own CPU clock."""
        return Availability(True, "process CPU time is always readable (figures are estimates)")

    def update_period_s(self) -> float:
        """CPU time is accounted per scheduler tick."""
        return _PROCESS_TIME_TICK_S

    def start(self) -> None:
        """Open a window: remember process CPU time and wall time."""
        self._t0 = (time.process_time(), time.perf_counter())

    def stop(self) -> Reading:
        """Close the window and convert CPU-seconds and resident GB into joules."""
        if self._t0 is None:
            raise MeasurementError("estimate sampler stopped before it was started")
        cpu0, wall0 = self._t0
        cpu_s = time.process_time() - cpu0
        duration_s = time.perf_counter() - wall0
        self._t0 = None
        rss_gb = rss_bytes() / 1e9
        reading = Reading(
            duration_s=duration_s,
            components=(
                ComponentEnergy("cpu", cpu_s * self.watts_per_core, Provenance.ESTIMATED),
                ComponentEnergy(
                    "memory", rss_gb * self.watts_per_gb * duration_s, Provenance.ESTIMATED
                ),
            ),
            details={"cpu_s": cpu_s, "rss_gb": rss_gb},
        )
        if cpu_s <= 0 and not self._allow_idle:
            raise MeasurementError(
                f"the process used no CPU time in a {duration_s:.3f} s window: the window is "
                "shorter than the kernel's CPU-time accounting tick; lengthen `energy.window_s`"
            )
        return check_reading(reading, sampler=self.name)

    def metadata(self) -> dict[str, str]:
        """Coefficients, their source, and the hardware they are applied to."""
        source = "recipe (energy.estimate)" if self._from_recipe else "documented default"
        return {
            "cpu_model": cpu_model(),
            "logical_cpus": str(logical_cpus()),
            "watts_per_core": f"{self.watts_per_core:g}",
            "watts_per_gb": f"{self.watts_per_gb:g}",
            "coefficients_source": source,
            "systematic_uncertainty": (
                f"+/-{DEFAULT_SYSTEMATIC_REL:.0%} on absolute joules (coefficients); "
                "ratios between variants on one machine are far tighter"
            ),
            "covers": "this process's CPU time and resident memory; no GPU, no idle power",
        }
