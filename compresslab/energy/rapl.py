"""CPU energy from RAPL counters through the Linux powercap tree (``measured``).

Where the counters are:

- ``intel-rapl:N``: package ``N`` (its ``name`` file says ``package-N``); on laptops a top-level
  zone named ``psys`` (the platform domain) sits beside it.
- ``intel-rapl:N:M``: sub-zones of package ``N`` whose ``name`` says ``core``, ``uncore`` or
  ``dram``. Core and uncore are inside the package and are never added (that would count them
  twice); DRAM is separate and counted only on request.
- ``intel-rapl-mmio:N``: on recent Intel parts, the same package counter read through MMIO. One of
  the pair is counted, never both: the MSR zone is preferred, the MMIO one is used only when the
  MSR zone is missing or unreadable.

AMD Zen CPUs expose the same ``intel-rapl`` tree on recent kernels. Every zone holds ``name``,
``energy_uj`` (microjoules, a free-running counter) and ``max_energy_range_uj`` (where that counter
wraps back to zero).

Wraparound: a background thread reads every counter each ``poll_interval_s`` and adds the
differences; a negative difference means the counter wrapped once, so ``max_energy_range_uj`` is
added to it. A long window may wrap many times: all wraps are counted as long as no poll interval
sees two, which the default interval guarantees (see :func:`default_poll_interval_s`).

Since Linux 5.10 (CVE-2020-8694, "Platypus") ``energy_uj`` is readable by root only; the reason
:meth:`RaplSampler.available` returns then says how to grant access.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from compresslab.energy.base import (
    Availability,
    ComponentEnergy,
    Provenance,
    Reading,
    check_reading,
    probe_update_period_s,
)
from compresslab.errors import BackendUnavailableError, MeasurementError, RecipeError
from compresslab.machine import cpu_model
from compresslab.units import uj_to_j

logger = logging.getLogger(__name__)

#: Environment variable that points the sampler at another powercap tree (a container mount).
ROOT_ENV = "COMPRESSLAB_POWERCAP_ROOT"
#: Where Linux exposes the powercap tree.
DEFAULT_ROOT = Path("/sys/class/powercap")
#: Domains a recipe may request; core and uncore are inside the package and never offered.
DOMAINS: tuple[str, ...] = ("package", "dram", "psys")
#: RAPL updates its counters about every millisecond.
RAPL_UPDATE_PERIOD_S = 0.001
#: An upper bound on what one RAPL domain draws, used only to size the poll interval.
MAX_POWER_W = 1000.0
#: Polls per shortest possible wrap period (range / MAX_POWER_W): a safety factor of four.
POLLS_PER_WRAP = 4.0
MIN_POLL_INTERVAL_S = 0.01
MAX_POLL_INTERVAL_S = 1.0

_ZONE_RE = re.compile(r"^intel-rapl(?P<mmio>-mmio)?:(?P<zone>\d+)(?::(?P<sub>\d+))?$")
# Directories the discovery descends into: the control types and the zones themselves. Other
# sysfs links (``device``, ``subsystem``, ``power``) are never followed, so it cannot loop.
_DESCEND_RE = re.compile(r"^intel-rapl(-mmio)?(:\d+)*$")
# ``package-N``, or ``package-N-die-M`` on multi-die parts (one zone per die).
_PACKAGE_NAME_RE = re.compile(r"^package-(\d+(?:-die-\d+)?)$")

_PERMISSION_FIX = (
    "RAPL counters are readable by root only since Linux 5.10 (CVE-2020-8694): run as root, "
    "or `sudo chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj` (lost at reboot; make it "
    "permanent with a udev or tmpfiles.d rule that makes energy_uj group-readable), "
    "or pick `sampler: estimate`"
)


def _read_uj(path: Path) -> int:
    """Read one integer sysfs file (``energy_uj`` or ``max_energy_range_uj``), in microjoules."""
    return int(path.read_text().strip())


def default_poll_interval_s(max_energy_range_uj: int) -> float:
    """The longest poll interval that cannot miss a wrap, with a safety factor.

    The fastest a counter can wrap is ``range_j / MAX_POWER_W`` (1000 W, above any CPU package);
    polling four times per such period guarantees that no interval sees two wraps. The result is
    capped to [0.01 s, 1.0 s]: shorter intervals only cost CPU time, and one second keeps the
    final partial interval small. With the common range of about 262 kJ the interval is 1.0 s.

    Args:
        max_energy_range_uj: the smallest ``max_energy_range_uj`` among the zones read.
    """
    range_j = uj_to_j(max_energy_range_uj)
    interval_s = range_j / MAX_POWER_W / POLLS_PER_WRAP
    return min(MAX_POLL_INTERVAL_S, max(MIN_POLL_INTERVAL_S, interval_s))


@dataclass(frozen=True)
class Zone:
    """One powercap zone that the sampler counts.

    Attributes:
        component: the name in readings: ``cpu-package-N``, ``dram-N`` or ``psys``.
        domain: ``package``, ``dram`` or ``psys``.
        path: the zone's directory.
        label: the zone's ``name`` file, e.g. ``package-0``.
        max_energy_range_uj: where ``energy_uj`` wraps to zero.
    """

    component: str
    domain: str
    path: Path
    label: str
    max_energy_range_uj: int

    @property
    def energy_path(self) -> Path:
        """The zone's ``energy_uj`` file."""
        return self.path / "energy_uj"


@dataclass(frozen=True)
class _Candidate:
    """A zone found in the tree, before the choice between duplicates."""

    component: str
    domain: str
    path: Path
    label: str
    mmio: bool


def _zone_dirs(root: Path) -> Iterator[tuple[str, Path]]:
    """Every ``intel-rapl*`` zone directory under ``root``, flat or nested, once per name.

    ``/sys/class/powercap`` lists every zone as a flat link; ``/sys/devices/virtual/powercap``
    (what containers mount) nests sub-zones inside their package. Both layouts are searched.
    """
    seen: set[str] = set()
    stack = [root]
    depth = {root: 0}
    while stack:
        here = stack.pop()
        try:
            entries = sorted(here.iterdir())
        except OSError:
            continue
        for entry in entries:
            if not _DESCEND_RE.match(entry.name) or not entry.is_dir():
                continue
            if _ZONE_RE.match(entry.name) and entry.name not in seen:
                seen.add(entry.name)
                yield entry.name, entry
            if depth[here] < 3:
                depth[entry] = depth[here] + 1
                stack.append(entry)


def _read_name(path: Path) -> str | None:
    try:
        return (path / "name").read_text().strip()
    except OSError:
        return None


def _candidates(root: Path) -> list[_Candidate]:
    """Every package, DRAM and psys zone in the tree (core and uncore are left out)."""
    zones = dict(_zone_dirs(root))
    out: list[_Candidate] = []
    for dirname, path in zones.items():
        match = _ZONE_RE.match(dirname)
        assert match is not None  # _zone_dirs yields matching names only
        label = _read_name(path)
        if label is None:
            logger.debug("powercap zone %s has no readable name file; skipped", path)
            continue
        mmio = match["mmio"] is not None
        if match["sub"] is None:
            package = _PACKAGE_NAME_RE.match(label)
            if package:
                out.append(_Candidate(f"cpu-package-{package[1]}", "package", path, label, mmio))
            elif label == "psys":
                out.append(_Candidate("psys", "psys", path, label, mmio))
            else:
                logger.debug("powercap zone %s (%s) is not a known domain; skipped", path, label)
            continue
        if label != "dram":
            continue  # core and uncore are inside the package
        # Number the DRAM zone like its package (the parent's name), not like the directory.
        parent_name = f"intel-rapl{'-mmio' if mmio else ''}:{match['zone']}"
        parent_label = _read_name(zones[parent_name]) if parent_name in zones else None
        package = _PACKAGE_NAME_RE.match(parent_label or "")
        index = package[1] if package else match["zone"]
        out.append(_Candidate(f"dram-{index}", "dram", path, label, mmio))
    return out


@dataclass(frozen=True)
class _Discovery:
    """The zones chosen for the requested domains, or why they cannot be read."""

    zones: tuple[Zone, ...]
    problem: str | None


def _discover(root: Path, domains: tuple[str, ...]) -> _Discovery:
    """Find the zones for ``domains`` under ``root`` and check that each one is readable."""
    if not root.is_dir():
        return _Discovery(
            (),
            f"no powercap tree at {root}: not Linux, or a container that does not mount "
            "/sys/devices/virtual/powercap; mount it, or set "
            f"{ROOT_ENV} to where it is mounted, or use `sampler: estimate`",
        )
    candidates = _candidates(root)
    by_component: dict[str, list[_Candidate]] = {}
    for cand in sorted(candidates, key=lambda c: (c.component, c.mmio)):
        by_component.setdefault(cand.component, []).append(cand)

    zones: list[Zone] = []
    for domain in domains:
        components = sorted(
            (comp for comp, cands in by_component.items() if cands[0].domain == domain),
            key=_component_order,
        )
        if not components:
            return _Discovery((), _missing_domain(root, domain))
        for component in components:
            zone, problem = _first_readable(by_component[component])
            if zone is None:
                return _Discovery((), problem)
            zones.append(zone)
    return _Discovery(tuple(zones), None)


def _component_order(component: str) -> tuple[int | str, ...]:
    """Sort ``cpu-package-10`` after ``cpu-package-9`` (numbers compared as numbers)."""
    return tuple(int(part) if part.isdigit() else part for part in component.split("-"))


def _missing_domain(root: Path, domain: str) -> str:
    if domain == "package":
        return (
            f"no RAPL package zone (intel-rapl:N named package-N) under {root}: this CPU or "
            "kernel exposes no RAPL (load the intel_rapl_msr module, or on AMD use Linux 5.8+), "
            f"or set {ROOT_ENV}, or use `sampler: estimate`"
        )
    return (
        f"RAPL domain '{domain}' was requested but no zone under {root} provides it: this CPU "
        f"does not expose it; remove '{domain}' from `energy.rapl.domains`"
    )


def _first_readable(cands: list[_Candidate]) -> tuple[Zone | None, str]:
    """The first readable zone of a duplicated pair (MSR before MMIO), or why none is."""
    problems: list[str] = []
    for cand in cands:
        energy_path = cand.path / "energy_uj"
        try:
            _read_uj(energy_path)
            max_range_uj = _read_uj(cand.path / "max_energy_range_uj")
        except PermissionError:
            problems.append(f"{energy_path} is not readable by this user: {_PERMISSION_FIX}")
            continue
        except (OSError, ValueError) as e:
            problems.append(f"cannot read {energy_path}: {e}")
            continue
        if max_range_uj <= 0:
            problems.append(f"{cand.path / 'max_energy_range_uj'} is {max_range_uj}, not positive")
            continue
        if problems:
            logger.info("using %s because %s", cand.path, "; ".join(problems))
        zone = Zone(cand.component, cand.domain, cand.path, cand.label, max_range_uj)
        return zone, ""
    return None, "; ".join(problems)


def _resolve_root(root: str | Path | None) -> Path:
    if root is not None:
        return Path(root)
    from_env = os.environ.get(ROOT_ENV)
    return Path(from_env) if from_env else DEFAULT_ROOT


def _validate_domains(domains: Iterable[str]) -> tuple[str, ...]:
    if isinstance(domains, str):
        domains = (domains,)
    out = tuple(domains)
    unknown = [d for d in out if d not in DOMAINS]
    if unknown:
        hint = ""
        if any(d in ("core", "uncore") for d in unknown):
            hint = " (core and uncore are inside the package, which is always counted)"
        raise RecipeError(
            f"unknown RAPL domain(s) {', '.join(map(repr, unknown))}{hint}: "
            f"use some of {', '.join(DOMAINS)}",
            field="energy.rapl.domains",
        )
    if not out or len(set(out)) != len(out):
        raise RecipeError(
            f"RAPL domains {out!r} must be non-empty and without repeats, e.g. ['package', 'dram']",
            field="energy.rapl.domains",
        )
    if "psys" in out and "package" in out:
        logger.warning(
            "RAPL psys (platform) energy includes the package on most laptops: "
            "requesting both may count the package twice"
        )
    return out


class _Accumulator:
    """Sums counter differences across wraps; polled by a background thread and at the edges."""

    def __init__(self, zones: tuple[Zone, ...]) -> None:
        self.zones = zones
        self.polls = 0
        self.wraps = 0
        self.total_uj = [0] * len(zones)
        self._last_uj = [self._read(z) for z in zones]
        self._lock = threading.Lock()

    @staticmethod
    def _read(zone: Zone) -> int:
        try:
            return _read_uj(zone.energy_path)
        except PermissionError as e:
            raise MeasurementError(
                f"{zone.energy_path} became unreadable mid-window: {_PERMISSION_FIX}"
            ) from e
        except (OSError, ValueError) as e:
            raise MeasurementError(
                f"cannot read RAPL counter {zone.energy_path} mid-window ({e}): the zone vanished "
                "(CPU hot-unplug or module unload?); rerun the measurement"
            ) from e

    def poll(self) -> None:
        """Read every counter once and add its difference since the last read."""
        with self._lock:
            for i, zone in enumerate(self.zones):
                now_uj = self._read(zone)
                delta_uj = now_uj - self._last_uj[i]
                if delta_uj < 0:
                    # One wrap; the poll interval is short enough that there is never two.
                    delta_uj += zone.max_energy_range_uj
                    self.wraps += 1
                self.total_uj[i] += delta_uj
                self._last_uj[i] = now_uj
            self.polls += 1


class _Window:
    """One open measurement window: its accumulator, thread and start time."""

    def __init__(self, accumulator: _Accumulator, interval_s: float) -> None:
        self.accumulator = accumulator
        self.interval_s = interval_s
        self.error: Exception | None = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="compresslab-rapl", daemon=True)
        self.t0_s = time.perf_counter()

    def _run(self) -> None:
        try:
            while not self.stopping.wait(self.interval_s):
                self.accumulator.poll()
        except Exception as e:  # handed to stop(), which raises it in the caller's thread
            self.error = e


class RaplSampler:
    """Measured CPU energy from RAPL ``energy_uj`` counters, with wraparound handled.

    Args:
        root: the powercap tree; default ``$COMPRESSLAB_POWERCAP_ROOT``, else
            ``/sys/class/powercap``.
        domains: what to count, some of ``package`` (default), ``dram`` and ``psys``. Every
            package of a multi-socket machine is counted.
        poll_interval_s: how often the background thread reads the counters; default
            :func:`default_poll_interval_s` of the smallest counter range.

    Raises:
        RecipeError: an unknown domain or a non-positive poll interval.
    """

    name = "rapl"
    provenance = Provenance.MEASURED
    scope = "machine"

    def __init__(
        self,
        *,
        root: str | Path | None = None,
        domains: tuple[str, ...] = ("package",),
        poll_interval_s: float | None = None,
    ) -> None:
        self.root = _resolve_root(root)
        self.domains = _validate_domains(domains)
        if poll_interval_s is not None and not (0 < poll_interval_s < float("inf")):
            raise RecipeError(
                f"poll_interval_s must be a positive number of seconds, not {poll_interval_s!r}; "
                "leave it out for a safe default",
                field="energy.rapl.poll_interval_s",
            )
        self._poll_interval_s = poll_interval_s
        self._window: _Window | None = None
        self._zones: tuple[Zone, ...] = ()

    def _discover(self) -> _Discovery:
        found = _discover(self.root, self.domains)
        if found.problem is None:
            self._zones = found.zones
        return found

    def available(self) -> Availability:
        """Whether every requested domain has a readable counter under the root."""
        found = self._discover()
        if found.problem is not None:
            return Availability(False, found.problem)
        used = ", ".join(f"{z.component} ({z.path.name})" for z in found.zones)
        return Availability(True, f"RAPL counters readable under {self.root}: {used}")

    def update_period_s(self) -> float:
        """RAPL updates its counters about every millisecond (nominal; see the probe)."""
        return RAPL_UPDATE_PERIOD_S

    def probe_update_period_s(self, *, timeout_s: float = 0.25) -> float | None:
        """The package counter's observed update period, or None if it did not move."""
        zones = self._zones or self._discover().zones
        if not zones:
            return None
        path = zones[0].energy_path
        return probe_update_period_s(lambda: float(_read_uj(path)), timeout_s=timeout_s)

    def effective_poll_interval_s(self) -> float:
        """The interval the background thread polls at (the default needs the zones' ranges)."""
        if self._poll_interval_s is not None:
            return self._poll_interval_s
        zones = self._zones or self._discover().zones
        if not zones:
            return MAX_POLL_INTERVAL_S
        return default_poll_interval_s(min(z.max_energy_range_uj for z in zones))

    def start(self) -> None:
        """Open a window: read every counter and start the accumulator thread.

        Raises:
            BackendUnavailableError: no readable counter (the message says how to fix it).
            MeasurementError: a window is already open.
        """
        if self._window is not None:
            raise MeasurementError("rapl sampler started twice: stop() the open window first")
        found = self._discover()
        if found.problem is not None:
            raise BackendUnavailableError(f"rapl: {found.problem}")
        interval_s = self.effective_poll_interval_s()
        window = _Window(_Accumulator(found.zones), interval_s)
        window.thread.start()
        self._window = window

    def stop(self) -> Reading:
        """Close the window: stop the thread, read the counters once more, return the joules.

        Raises:
            MeasurementError: not started, a counter vanished or became unreadable mid-window,
                or the window holds no energy (see :func:`check_reading`).
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
            },
        )
        return check_reading(reading, sampler=self.name)

    def metadata(self) -> dict[str, str]:
        """The CPU, the zones read (with paths), the counter's resolution and what it covers."""
        found = self._discover()
        if found.problem is None:
            zones = "; ".join(f"{z.component}={z.path} ({z.label})" for z in found.zones)
            ranges = "; ".join(f"{z.component}={z.max_energy_range_uj}" for z in found.zones)
        else:
            zones = f"none ({found.problem})"
            ranges = "unknown"
        return {
            "cpu_model": cpu_model(),
            "powercap_root": str(self.root),
            "domains": ",".join(self.domains),
            "zones": zones,
            "max_energy_range_uj": ranges,
            "poll_interval_s": f"{self.effective_poll_interval_s():g}",
            "counter_resolution": (
                "energy_uj in microjoules; hardware energy unit about 15.3 uJ (2^-16 J) by "
                f"default; updated about every {RAPL_UPDATE_PERIOD_S * 1000:g} ms"
            ),
            "covers": (
                "CPU package(s): cores, caches, uncore; not DRAM unless requested; "
                "the whole machine's work, not only this process"
            ),
        }
