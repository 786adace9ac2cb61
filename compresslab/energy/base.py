"""The small interface every energy sampler implements, and the records it returns.

A sampler measures one window of time: ``start()`` then ``stop() -> Reading``. It says whether
it can run here with ``available() -> Availability`` (and *why* not), and every joule it
returns carries its provenance:

- ``measured``: read from a hardware energy counter (RAPL ``energy_uj``, NVML total energy).
- ``integrated``: power readings sampled and integrated over time (NVML power polling).
- ``estimated``: derived from activity (CPU-seconds) times stated coefficients.
- ``modeled``: computed from counted operations and bytes times energy-per-operation figures.
"""

from __future__ import annotations

import itertools
import math
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from compresslab.availability import Availability
from compresslab.errors import MeasurementError
from compresslab.records import Provenance


def weakest(provenances: list[Provenance]) -> Provenance:
    """The weakest provenance of several components: a sum is only as good as its worst part."""
    if not provenances:
        raise ValueError("weakest() of no provenance")
    return max(provenances, key=lambda p: p.rank)


@dataclass(frozen=True)
class ComponentEnergy:
    """Energy of one hardware component over one window.

    Attributes:
        component: what was counted, e.g. ``cpu-package-0``, ``dram-0``, ``gpu-0``, ``cpu``.
        energy_j: joules over the window (never negative).
        provenance: how the figure was obtained.
    """

    component: str
    energy_j: float
    provenance: Provenance


@dataclass(frozen=True)
class Reading:
    """What a sampler returns for one window."""

    duration_s: float
    components: tuple[ComponentEnergy, ...]
    details: Mapping[str, float] = field(default_factory=dict)

    @property
    def energy_j(self) -> float:
        """Total joules over all components."""
        return sum(c.energy_j for c in self.components)

    @property
    def provenance(self) -> Provenance:
        """The weakest provenance among the components."""
        return weakest([c.provenance for c in self.components])


class CounterFaultError(MeasurementError):
    """A window's counter misbehaved (reset, torn read, a poll too late to rule out a wrap).

    The window's figure is wrong, but the next window may be fine: the protocol repeats the
    window a bounded number of times and records :attr:`reason` with the result.
    """

    #: The measurement protocol may repeat the window.
    retryable = True

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def check_reading(reading: Reading, *, sampler: str) -> Reading:
    """Reject an implausible reading instead of passing on a silent zero or a negative figure.

    Raises:
        MeasurementError: a component is negative or not finite, or the window holds no energy.
    """
    if not reading.components:
        raise MeasurementError(
            f"sampler '{sampler}' returned no component: nothing was counted; "
            "check `compresslab samplers` for what this machine exposes"
        )
    for c in reading.components:
        if not math.isfinite(c.energy_j) or c.energy_j < 0:
            raise MeasurementError(
                f"sampler '{sampler}' read {c.energy_j!r} J for {c.component}: an energy is "
                "never negative; a counter probably wrapped more than once between reads "
                "(shorten the poll interval) or was reset"
            )
    if reading.energy_j <= 0:
        raise MeasurementError(
            f"sampler '{sampler}' read 0 J over {reading.duration_s:.3f} s: the window is shorter "
            "than the counter's update period; lengthen `energy.window_s` in the recipe"
        )
    return reading


def probe_update_period_s(
    read: Callable[[], float], *, timeout_s: float = 0.25, changes: int = 5
) -> float | None:
    """Median time between changes of a counter, read in a tight loop for up to ``timeout_s``.

    Returns None when the counter changed fewer than twice in that time (an idle fake, or a
    counter slower than the timeout): callers then keep the nominal period.
    """
    t_end = time.perf_counter() + timeout_s
    last = read()
    stamps: list[float] = []
    while time.perf_counter() < t_end and len(stamps) <= changes:
        value = read()
        if value != last:
            stamps.append(time.perf_counter())
            last = value
        else:
            time.sleep(0.0002)
    if len(stamps) < 2:
        return None
    return statistics.median(b - a for a, b in itertools.pairwise(stamps))


@runtime_checkable
class Sampler(Protocol):
    """One energy backend. Implementations live one per module in ``compresslab.energy``."""

    #: Registry name used in recipes (``rapl``, ``nvml``, ``estimate``, ``model``).
    name: str
    #: The provenance of what this sampler returns.
    provenance: Provenance
    #: ``machine`` when the counter sees the whole device (idle power is measured and
    #: subtracted), ``process`` when it is attributed to this process only (no idle to subtract).
    scope: str

    def available(self) -> Availability:
        """Whether the sampler can run here; the reason says what it uses or what is missing."""
        ...

    def update_period_s(self) -> float:
        """How often the underlying counter changes; a window must last several periods."""
        ...

    def start(self) -> None:
        """Open a measurement window."""
        ...

    def stop(self) -> Reading:
        """Close the window and return its (checked) reading."""
        ...

    def metadata(self) -> dict[str, str]:
        """What the figures cover: hardware model, counter resolution, coefficients' source."""
        ...
