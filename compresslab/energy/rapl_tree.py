"""The powercap tree: which RAPL zones exist, which of them to count, and what they allow.

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
``energy_uj`` (microjoules, a free-running counter), ``max_energy_range_uj`` (where that counter
wraps back to zero) and usually ``constraint_N_max_power_uw`` (the largest power limit the zone
accepts, in microwatts), from which the zone's maximum power is taken (:func:`zone_max_power`).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from compresslab.errors import RecipeError
from compresslab.recipe import rapl_domains_problem
from compresslab.units import uj_to_j

logger = logging.getLogger(__name__)

#: Environment variable that points the sampler at another powercap tree (a container mount).
ROOT_ENV = "COMPRESSLAB_POWERCAP_ROOT"
#: Where Linux exposes the powercap tree.
DEFAULT_ROOT = Path("/sys/class/powercap")
#: Domains a recipe may request; core and uncore are inside the package and never offered.
DOMAINS: tuple[str, ...] = ("package", "dram", "psys")
#: The most one zone is assumed to draw when it states no constraint: above any CPU package,
#: DRAM channel set or laptop platform of today (a 2-socket server draws under 1 kW in all).
CEILING_W = 1000.0
#: Power may exceed a zone's limits for milliseconds (PL2, PL4 bursts): a reading is implausible
#: only above this multiple of the largest ``constraint_*_max_power_uw``.
CONSTRAINT_MARGIN = 2.0

_ZONE_RE = re.compile(r"^intel-rapl(?P<mmio>-mmio)?:(?P<zone>\d+)(?::(?P<sub>\d+))?$")
# Directories the discovery descends into: the control types and the zones themselves. Other
# sysfs links (``device``, ``subsystem``, ``power``) are never followed, so it cannot loop.
_DESCEND_RE = re.compile(r"^intel-rapl(-mmio)?(:\d+)*$")
# ``package-N``, or ``package-N-die-M`` on multi-die parts (one zone per die).
_PACKAGE_NAME_RE = re.compile(r"^package-(\d+(?:-die-\d+)?)$")
_CONSTRAINT_RE = re.compile(r"^constraint_\d+_max_power_uw$")

PERMISSION_FIX = (
    "RAPL counters are readable by root only since Linux 5.10 (CVE-2020-8694): run as root, "
    "or `sudo chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj` (lost at reboot; make it "
    "permanent with a udev or tmpfiles.d rule that makes energy_uj group-readable), "
    "or pick `sampler: estimate`"
)


def read_uj(path: Path) -> int:
    """Read one integer sysfs file (``energy_uj``, ``max_energy_range_uj``), in microjoules.

    Every read of a counter goes through this function (tests replace it with a clock-driven
    fake counter).
    """
    return int(path.read_text().strip())


@dataclass(frozen=True)
class Zone:
    """One powercap zone that the sampler counts.

    Attributes:
        component: the name in readings: ``cpu-package-N``, ``dram-N`` or ``psys``.
        domain: ``package``, ``dram`` or ``psys``.
        path: the zone's directory.
        label: the zone's ``name`` file, e.g. ``package-0``.
        max_energy_range_uj: where ``energy_uj`` wraps to zero.
        max_power_w: the most the zone can plausibly draw (:func:`zone_max_power`).
        max_power_source: where :attr:`max_power_w` comes from, for the metadata.
    """

    component: str
    domain: str
    path: Path
    label: str
    max_energy_range_uj: int
    max_power_w: float = CEILING_W
    max_power_source: str = "documented ceiling"

    @property
    def energy_path(self) -> Path:
        """The zone's ``energy_uj`` file."""
        return self.path / "energy_uj"

    @property
    def range_j(self) -> float:
        """The counter's range in joules."""
        return uj_to_j(self.max_energy_range_uj)

    @property
    def fastest_wrap_s(self) -> float:
        """The shortest time in which the counter can run through its whole range."""
        return self.range_j / self.max_power_w


def zone_max_power(path: Path, *, override_w: float | None = None) -> tuple[float, str]:
    """The most a zone can plausibly draw, in watts, and where that figure comes from.

    ``override_w`` (the recipe's ``energy.rapl.max_power_w``) wins; else twice the largest
    ``constraint_*_max_power_uw`` the zone states (:data:`CONSTRAINT_MARGIN`: short bursts
    exceed the limits); else :data:`CEILING_W`.
    """
    if override_w is not None:
        return override_w, "energy.rapl.max_power_w"
    limits_uw: list[int] = []
    try:
        names = sorted(p.name for p in path.iterdir() if _CONSTRAINT_RE.match(p.name))
    except OSError:
        names = []
    for name in names:
        try:
            value = read_uj(path / name)
        except (OSError, ValueError):
            continue
        if value > 0:
            limits_uw.append(value)
    if not limits_uw:
        return CEILING_W, f"documented ceiling {CEILING_W:g} W (no constraint_*_max_power_uw)"
    largest_w = max(limits_uw) / 1e6
    return (
        CONSTRAINT_MARGIN * largest_w,
        f"{CONSTRAINT_MARGIN:g} x the largest constraint_*_max_power_uw ({largest_w:g} W)",
    )


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
class Discovery:
    """The zones chosen for the requested domains, or why they cannot be read."""

    zones: tuple[Zone, ...]
    problem: str | None


def discover(
    root: Path, domains: tuple[str, ...], *, max_power_w: float | None = None
) -> Discovery:
    """Find the zones for ``domains`` under ``root`` and check that each one is readable."""
    if not root.is_dir():
        return Discovery(
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
            return Discovery((), _missing_domain(root, domain))
        for component in components:
            zone, problem = _first_readable(by_component[component], max_power_w)
            if zone is None:
                return Discovery((), problem)
            zones.append(zone)
    return Discovery(tuple(zones), None)


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


def _first_readable(cands: list[_Candidate], max_power_w: float | None) -> tuple[Zone | None, str]:
    """The first readable zone of a duplicated pair (MSR before MMIO), or why none is."""
    problems: list[str] = []
    for cand in cands:
        energy_path = cand.path / "energy_uj"
        range_path = cand.path / "max_energy_range_uj"
        try:
            read_uj(energy_path)
        except PermissionError:
            problems.append(f"{energy_path} is not readable by this user: {PERMISSION_FIX}")
            continue
        except (OSError, ValueError) as e:
            problems.append(f"cannot read {energy_path}: {e}")
            continue
        try:
            max_range_uj = read_uj(range_path)
        except (OSError, ValueError) as e:
            problems.append(
                f"cannot read {range_path} ({e}): without the counter's range its wraps cannot "
                "be counted; check that the intel_rapl driver is loaded and exposes it"
            )
            continue
        if max_range_uj <= 0:
            problems.append(f"{cand.path / 'max_energy_range_uj'} is {max_range_uj}, not positive")
            continue
        if problems:
            logger.info("using %s because %s", cand.path, "; ".join(problems))
        power_w, source = zone_max_power(cand.path, override_w=max_power_w)
        zone = Zone(
            cand.component, cand.domain, cand.path, cand.label, max_range_uj, power_w, source
        )
        return zone, ""
    return None, "; ".join(problems)


def resolve_root(root: str | Path | None) -> Path:
    """``root``, else ``$COMPRESSLAB_POWERCAP_ROOT``, else ``/sys/class/powercap``."""
    if root is not None:
        return Path(root)
    from_env = os.environ.get(ROOT_ENV)
    return Path(from_env) if from_env else DEFAULT_ROOT


def validate_domains(domains: Iterable[str]) -> tuple[str, ...]:
    """The requested domains, checked as the recipe checks them.

    Raises:
        RecipeError: an unknown domain, none, a repeat, or psys with the package or DRAM
            (psys contains them).
    """
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
    if not out:
        raise RecipeError(
            "RAPL domains must be non-empty, e.g. ['package'] or ['package', 'dram']",
            field="energy.rapl.domains",
        )
    problem = rapl_domains_problem(out)
    if problem:
        raise RecipeError(problem.replace("`domains`", "domains"), field="energy.rapl.domains")
    return out
