"""Energy samplers, one module per backend, behind the :class:`Sampler` interface.

``auto`` tries the backends in this documented order and takes the first available one:

1. ``rapl``: CPU package (and optional DRAM/psys) counters through Linux powercap (``measured``);
2. ``estimate``: process CPU-seconds times stated watts per core (``estimated``).

``nvml`` (NVIDIA GPU counters) joins the order when the model runs on a CUDA device. Every
backend that was not used is recorded with its reason in :class:`Selection`. ``model`` (the
analytic ``modeled`` tier) is never picked by ``auto``: name it to use it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from compresslab.energy.base import (
    Availability,
    ComponentEnergy,
    Provenance,
    Reading,
    Sampler,
    check_reading,
    weakest,
)
from compresslab.errors import BackendUnavailableError

__all__ = [
    "Availability",
    "ComponentEnergy",
    "Provenance",
    "Reading",
    "Sampler",
    "Selection",
    "check_reading",
    "describe_samplers",
    "make_sampler",
    "power_limit",
    "power_limit_availability",
    "select_sampler",
    "weakest",
    "SAMPLER_NAMES",
]


def _make_rapl(options: dict[str, Any]) -> Sampler:
    from compresslab.energy.rapl import RaplSampler

    return RaplSampler(**options)


def _make_nvml(options: dict[str, Any]) -> Sampler:
    from compresslab.energy.nvml import NvmlSampler

    return NvmlSampler(**options)


def _make_estimate(options: dict[str, Any]) -> Sampler:
    from compresslab.energy.estimate import EstimateSampler

    return EstimateSampler(**options)


def _make_model(options: dict[str, Any]) -> Sampler:
    from compresslab.energy.model import ModelSampler

    return ModelSampler(**options)


_FACTORIES: dict[str, Callable[[dict[str, Any]], Sampler]] = {
    "rapl": _make_rapl,
    "nvml": _make_nvml,
    "estimate": _make_estimate,
    "model": _make_model,
}

#: Names a recipe may use for ``energy.sampler`` (besides ``auto``).
SAMPLER_NAMES: tuple[str, ...] = tuple(_FACTORIES)


def make_sampler(name: str, options: dict[str, Any] | None = None) -> Sampler:
    """Build the sampler called ``name`` with backend-specific keyword options."""
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise BackendUnavailableError(
            f"unknown energy sampler '{name}': use one of auto, {', '.join(SAMPLER_NAMES)}"
        ) from None
    return factory(dict(options or {}))


@dataclass(frozen=True)
class Selection:
    """The sampler chosen for a run and why the others were not."""

    sampler: Sampler
    tried: tuple[tuple[str, Availability], ...]

    def explain(self) -> str:
        """One line per backend tried: used, or why not."""
        lines = []
        for name, avail in self.tried:
            mark = "used" if name == self.sampler.name else "not used"
            lines.append(f"{name}: {mark} ({avail.reason})")
        return "; ".join(lines)


def auto_order(*, device: str = "cpu") -> tuple[str, ...]:
    """The order ``auto`` tries backends in, for a model on ``device``."""
    if device.startswith("cuda"):
        return ("nvml", "rapl", "estimate")
    return ("rapl", "estimate")


def select_sampler(
    name: str,
    *,
    options: dict[str, dict[str, Any]] | None = None,
    device: str = "cpu",
) -> Selection:
    """Pick the sampler for ``name`` (``auto`` or a backend) and check that it can run here.

    Args:
        name: ``auto`` or one of :data:`SAMPLER_NAMES`.
        options: keyword options per backend name.
        device: where the model runs (``cpu`` or ``cuda[:N]``), which decides ``auto``'s order.

    Raises:
        BackendUnavailableError: the named backend cannot run here; the message lists the reason.
    """
    options = options or {}
    order = auto_order(device=device) if name == "auto" else (name,)
    tried: list[tuple[str, Availability]] = []
    for candidate in order:
        sampler = make_sampler(candidate, options.get(candidate))
        avail = sampler.available()
        tried.append((candidate, avail))
        if avail:
            return Selection(sampler=sampler, tried=tuple(tried))
    reasons = "; ".join(f"{n}: {a.reason}" for n, a in tried)
    hint = "" if name == "auto" else ", or set `energy.sampler: auto` (falls back to estimate)"
    raise BackendUnavailableError(f"no energy sampler can run here ({reasons}){hint}")


def describe_samplers(*, device: str = "cpu") -> list[tuple[str, Provenance, Availability]]:
    """Every sampler with its provenance and whether it can run on this machine."""
    out = []
    for name in SAMPLER_NAMES:
        sampler = make_sampler(name)
        out.append((name, sampler.provenance, sampler.available()))
    return out


def power_limit_availability() -> Availability:
    """Whether a GPU power limit can be set here (NVML and a GPU), and why (not)."""
    from compresslab.energy.nvml import NvmlSampler

    return NvmlSampler().available()


def power_limit(power_w: float) -> contextlib.AbstractContextManager[None]:
    """A block run with the GPUs' power limit at ``power_w`` (see :func:`.nvml.power_limit`)."""
    from compresslab.energy.nvml import power_limit as _power_limit

    return _power_limit(power_w)
