"""CPU energy from RAPL counters through the Linux powercap tree (``measured``).

Which zones are counted (packages; DRAM or psys on request; never core, uncore or an MMIO
duplicate besides its MSR zone) is decided in :mod:`.rapl_tree`; how a window's counter
differences are summed across wraps, and how resets, torn reads, late polls and frozen
counters are caught, in :mod:`.rapl_counter`.

Wraparound: a background thread reads every counter often enough that no wrap can be missed:
a sixteenth of the fastest wrap (``max_energy_range_uj`` over the zone's maximum power, from
its ``constraint_*_max_power_uw``), at least every quarter wrap and every 0.1 s. A counter
whose range is so small that this would mean polling faster than every millisecond is refused
(:meth:`RaplSampler.available` says why). A step that implies more power than the zone can
draw is a reset or a torn read: the window is rejected with a retryable
:class:`~compresslab.energy.base.CounterFaultError` and the protocol measures it again; it is
never counted as a wrap. A reset in the top ``Pmax x (gap + 2 update periods)`` of the range
(the blind zone: 16% of a 20 J range with no constraint file, not a sixteenth) fits a wrap as
far as the maximum power goes; there the zone's observed power decides, and a step it cannot
explain is rejected the same way (:mod:`.rapl_counter` states the residual bound).
A counter that does not move is frozen, and refused.

``psys`` covers the whole SoC, the package and DRAM included: it is counted *instead of*
them, never on top (a recipe that asks for both is refused).

Since Linux 5.10 (CVE-2020-8694, "Platypus") ``energy_uj`` is readable by root only; the reason
:meth:`RaplSampler.available` returns then says how to grant access.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from compresslab.energy import rapl_counter, rapl_tree
from compresslab.energy.base import (
    Availability,
    ComponentEnergy,
    Provenance,
    Reading,
    check_reading,
)
from compresslab.energy.rapl_counter import (
    MAX_POLL_INTERVAL_S,
    RAPL_UPDATE_PERIOD_S,
    WRAP_POWER_SWING,
    Accumulator,
    CounterProbe,
    PollThread,
)
from compresslab.energy.rapl_tree import DOMAINS, ROOT_ENV, Zone
from compresslab.errors import BackendUnavailableError, MeasurementError, RecipeError
from compresslab.machine import cpu_model
from compresslab.units import uj_to_j

logger = logging.getLogger(__name__)

__all__ = ["DOMAINS", "ROOT_ENV", "RaplSampler", "default_poll_interval_s"]


def default_poll_interval_s(
    max_energy_range_uj: int, max_power_w: float = rapl_tree.CEILING_W
) -> float:
    """The longest poll interval that cannot miss a wrap of one counter, with a safety factor.

    A sixteenth of the fastest wrap (``range / max_power_w``), between 1 ms and 0.1 s
    (:func:`.rapl_counter.safe_poll_interval_s`). A counter that would need polling faster
    than a thread can sustain is refused (:func:`.rapl_counter.poll_problem`).

    Args:
        max_energy_range_uj: the counter's ``max_energy_range_uj``.
        max_power_w: the most its zone can draw (:func:`.rapl_tree.zone_max_power`).
    """
    zone = Zone("zone", "package", Path("."), "zone", max_energy_range_uj, max_power_w)
    return rapl_counter.safe_poll_interval_s((zone,))


class RaplSampler:
    """Measured CPU energy from RAPL ``energy_uj`` counters, with wraparound and faults handled.

    Args:
        root: the powercap tree; default ``$COMPRESSLAB_POWERCAP_ROOT``, else
            ``/sys/class/powercap``.
        domains: what to count: ``package`` (default; every package of a multi-socket machine),
            optionally with ``dram``; or ``psys`` alone (it contains both).
        poll_interval_s: how often the background thread reads the counters; default: a
            sixteenth of the fastest wrap (refused when it could miss one).
        max_power_w: the most one zone can draw; default from its constraints (see
            :func:`.rapl_tree.zone_max_power`).

    Raises:
        RecipeError: an unknown or overlapping domain, or a non-positive number.
    """

    name = "rapl"
    provenance = Provenance.MEASURED
    scope = "machine"

    def __init__(
        self,
        *,
        root: str | Path | None = None,
        domains: tuple[str, ...] | list[str] = ("package",),
        poll_interval_s: float | None = None,
        max_power_w: float | None = None,
    ) -> None:
        self.root = rapl_tree.resolve_root(root)
        self.domains = rapl_tree.validate_domains(domains)
        for field, value in (("poll_interval_s", poll_interval_s), ("max_power_w", max_power_w)):
            if value is not None and not (0 < value < float("inf")):
                raise RecipeError(
                    f"{field} must be a positive number, not {value!r}; leave it out for a "
                    "safe default",
                    field=f"energy.rapl.{field}",
                )
        self._poll_interval_s = poll_interval_s
        self._max_power_w = max_power_w
        self._window: PollThread | None = None
        self._zones: tuple[Zone, ...] = ()
        self._probe: CounterProbe | None = None

    # --- what is there ------------------------------------------------------------------------

    def _discover(self) -> rapl_tree.Discovery:
        found = rapl_tree.discover(self.root, self.domains, max_power_w=self._max_power_w)
        if found.problem is None:
            if found.zones != self._zones:
                self._probe = None  # other zones: probe them again
            self._zones = found.zones
        return found

    def _probed(self, zones: tuple[Zone, ...]) -> CounterProbe:
        """The counters' probe (once per sampler and set of zones)."""
        if self._probe is None:
            self._probe = rapl_counter.probe_counters(zones)
        return self._probe

    def _problem(self) -> tuple[rapl_tree.Discovery, str | None]:
        """The zones, and why they cannot be counted (None when they can)."""
        found = self._discover()
        if found.problem is not None:
            return found, found.problem
        problem = rapl_counter.poll_problem(found.zones, self._poll_interval_s)
        if problem is not None:
            return found, problem
        probe = self._probed(found.zones)
        if not probe.ok:
            return found, "; ".join(probe.problems)
        return found, None

    def available(self) -> Availability:
        """Whether every requested domain has a readable, moving counter that can be polled."""
        found, problem = self._problem()
        if problem is not None:
            return Availability(False, problem)
        used = ", ".join(f"{z.component} ({z.path.name})" for z in found.zones)
        return Availability(True, f"RAPL counters readable under {self.root}: {used}")

    def update_period_s(self) -> float:
        """RAPL updates its counters about every millisecond (nominal; see the probe)."""
        return RAPL_UPDATE_PERIOD_S

    def probe_update_period_s(self, *, timeout_s: float = 0.25) -> float | None:
        """The counters' observed update period, or None if it could not be told."""
        zones = self._zones or self._discover().zones
        if not zones:
            return None
        return self._probed(zones).period_s

    def effective_poll_interval_s(self) -> float:
        """The interval the background thread polls at (the default needs the zones' ranges)."""
        if self._poll_interval_s is not None:
            return self._poll_interval_s
        zones = self._zones or self._discover().zones
        if not zones:
            return MAX_POLL_INTERVAL_S
        return rapl_counter.safe_poll_interval_s(zones)

    # --- one window ---------------------------------------------------------------------------

    def start(self) -> None:
        """Open a window: read every counter and start the poll thread.

        Raises:
            BackendUnavailableError: no readable counter, one that cannot be polled safely, or
                a frozen one (the message says why and how to fix it).
            MeasurementError: a window is already open.
        """
        if self._window is not None:
            raise MeasurementError("rapl sampler started twice: stop() the open window first")
        found, problem = self._problem()
        if problem is not None:
            raise BackendUnavailableError(f"rapl: {problem}")
        period_s = max(RAPL_UPDATE_PERIOD_S, self._probed(found.zones).period_s or 0.0)
        accumulator = Accumulator(found.zones, update_period_s=period_s)
        window = PollThread(accumulator, self.effective_poll_interval_s())
        window.thread.start()
        self._window = window

    def stop(self) -> Reading:
        """Close the window: stop the thread, read the counters once more, return the joules.

        Raises:
            CounterFaultError: a counter was reset, a read was torn, or a poll came too late
                to rule out a missed wrap (retryable: the protocol measures the window again).
            MeasurementError: not started, a counter vanished, became unreadable or froze, or
                the window holds no energy (see :func:`check_reading`).
        """
        window = self._window
        if window is None:
            raise MeasurementError("rapl sampler stopped before it was started")
        self._window = None
        window.stopping.set()
        window.thread.join()
        if window.error is not None:
            if isinstance(window.error, MeasurementError):
                raise window.error
            raise MeasurementError(f"rapl poll thread failed: {window.error!r}") from window.error
        acc = window.accumulator
        acc.poll()
        # The window runs from the first read to this last one, so energy and time match.
        duration_s = time.perf_counter() - window.t0_s
        frozen = rapl_counter.frozen_zones(acc, duration_s)
        if frozen:
            self._probe = None  # probe again before the next window
            raise MeasurementError(
                f"RAPL counter(s) {', '.join(frozen)} did not change in {duration_s:.3g} s "
                f"although RAPL updates them about every {acc.update_period_s * 1000:.3g} ms: "
                "the counter froze (a firmware or hypervisor fault), the window is not too "
                "short; check `compresslab samplers`, or use `sampler: estimate`"
            )
        reading = Reading(
            duration_s=duration_s,
            components=tuple(
                ComponentEnergy(zone.component, uj_to_j(total_uj), Provenance.MEASURED)
                for zone, total_uj in zip(acc.zones, acc.total_uj, strict=True)
            ),
            details={
                "polls": float(acc.polls),
                "wraps": float(acc.wraps),
                "poll_interval_s": window.interval_s,
                "max_poll_gap_s": acc.max_gap_s,
            },
        )
        return check_reading(reading, sampler=self.name)

    def metadata(self) -> dict[str, str]:
        """The CPU, the zones read (with paths), the counter's resolution and what it covers."""
        found = self._discover()
        if found.problem is None:
            zones = "; ".join(f"{z.component}={z.path} ({z.label})" for z in found.zones)
            ranges = "; ".join(f"{z.component}={z.max_energy_range_uj}" for z in found.zones)
            powers = "; ".join(
                f"{z.component}={z.max_power_w:g} W ({z.max_power_source})" for z in found.zones
            )
        else:
            zones = f"none ({found.problem})"
            ranges = powers = "unknown"
        covers = (
            "the whole SoC (psys: CPU package, DRAM, and on some parts the rest of the platform)"
            if self.domains == ("psys",)
            else "CPU package(s): cores, caches, uncore; "
            + ("and DRAM" if "dram" in self.domains else "not DRAM")
        )
        return {
            "cpu_model": cpu_model(),
            "powercap_root": str(self.root),
            "domains": ",".join(self.domains),
            "zones": zones,
            "max_energy_range_uj": ranges,
            "max_power_w": powers,
            "poll_interval_s": f"{self.effective_poll_interval_s():g}",
            "counter_resolution": (
                "energy_uj in microjoules; hardware energy unit about 15.3 uJ (2^-16 J) by "
                f"default; updated about every {RAPL_UPDATE_PERIOD_S * 1000:g} ms"
            ),
            "faults": (
                "a step implying more than the zone's maximum power is a reset or torn read "
                "(window rejected, repeated), never a wrap; a counter that went back further "
                f"than {WRAP_POWER_SWING:g} x its observed power explains is rejected the same "
                "way (a reset and a wrap cannot be told apart)"
            ),
            "covers": covers + "; the whole machine's work, not only this process",
        }
