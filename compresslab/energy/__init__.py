"""Energy samplers, one module per backend, behind the :class:`Sampler` interface.

``auto`` tries the backends in this documented order and takes the first available one:

1. ``rapl``: CPU package (and optional DRAM), or psys, counters through Linux powercap
   (``measured``);
2. ``estimate``: process CPU-seconds times stated watts per core (``estimated``).

When the model runs on a CUDA device (``energy.device: cuda[:N]``), ``auto`` means ``nvml``
alone: the model's GPU through NVML, with the host CPU's energy over the same windows beside it
(RAPL if readable, else the estimate; ``energy.nvml.host``), see :mod:`.gpu_host`. A CPU-only
sampler would leave the GPU out, so it is used for a GPU model only when named. Every backend
that was not used is recorded with its reason in :class:`Selection`. ``model`` (the analytic
``modeled`` tier) is never picked by ``auto``: name it to use it.

A CUDA device that torch cannot use here (a CPU-only build, no device N) is refused before
anything runs (:func:`select_sampler`), and ``nvml`` for a model on the CPU is refused too: it
would measure an idle GPU.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from compresslab.energy.base import (
    Availability,
    ComponentEnergy,
    CounterFaultError,
    Provenance,
    Reading,
    Sampler,
    check_reading,
    weakest,
)
from compresslab.errors import BackendUnavailableError

logger = logging.getLogger(__name__)

__all__ = [
    "Availability",
    "ComponentEnergy",
    "CounterFaultError",
    "Provenance",
    "Reading",
    "Sampler",
    "Selection",
    "check_reading",
    "describe_samplers",
    "make_sampler",
    "power_limit",
    "power_limit_availability",
    "check_device",
    "select_sampler",
    "weakest",
    "SAMPLER_NAMES",
]


def _make_rapl(options: dict[str, Any]) -> Sampler:
    from compresslab.energy.rapl import RaplSampler

    return RaplSampler(**options)


def _make_nvml(options: dict[str, Any]) -> Sampler:
    """The GPU sampler; with ``host`` (``auto``, ``rapl``, ``estimate``), the host CPU beside it.

    ``host_options`` holds the host samplers' own options by name (``rapl``, ``estimate``).
    """
    from compresslab.energy.nvml import NvmlSampler

    options = dict(options)
    host = options.pop("host", "none")
    host_options: dict[str, dict[str, Any]] = options.pop("host_options", None) or {}
    gpu = NvmlSampler(**options)
    if host == "none":
        return gpu
    from compresslab.energy.estimate import EstimateSampler
    from compresslab.energy.gpu_host import GpuHostSampler
    from compresslab.energy.rapl import RaplSampler

    if host in ("auto", "rapl"):
        rapl = RaplSampler(**host_options.get("rapl", {}))
        if host == "rapl" or rapl.available():  # auto: RAPL if readable, else the estimate
            return GpuHostSampler(gpu=gpu, host=rapl)
        host = "estimate"
    if host == "estimate":
        estimate = EstimateSampler(allow_idle=True, **host_options.get("estimate", {}))
        return GpuHostSampler(gpu=gpu, host=estimate)
    raise BackendUnavailableError(
        f"unknown host CPU sampler {host!r} for nvml: use auto, rapl, estimate or none"
    )


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
    """The order ``auto`` tries backends in, for a model on ``device``.

    A model on a GPU is measured by ``nvml`` only (with the host CPU beside it): a CPU-only
    sampler would leave the GPU's energy out.
    """
    from compresslab.energy.cuda import is_cuda

    if is_cuda(device):
        return ("nvml",)
    return ("rapl", "estimate")


def _options_for(candidate: str, options: dict[str, dict[str, Any]], device: str) -> dict[str, Any]:
    """A backend's options; ``nvml`` also gets the model's device and the host's options."""
    opts = dict(options.get(candidate) or {})
    if candidate == "nvml":
        if opts.get("device_indices") is None:
            opts.pop("device_indices", None)
        # The model's device is synchronised at the window edges; it also picks the GPU that
        # is read, unless ``device_indices`` names NVML devices explicitly.
        opts["torch_device"] = device
        opts.setdefault("host", "auto")
        opts["host_options"] = {
            "rapl": dict(options.get("rapl") or {}),
            "estimate": dict(options.get("estimate") or {}),
        }
    return opts


def check_device(name: str, device: str) -> None:
    """Refuse a device torch cannot use here, and ``nvml`` for a model on the CPU.

    Raises:
        BackendUnavailableError: the message says why (a CPU-only torch, no device N, ...).
    """
    from compresslab.energy.cuda import device_problem, is_cuda

    problem = device_problem(device)
    if problem is not None:
        raise BackendUnavailableError(problem)
    if name == "nvml" and not is_cuda(device):
        raise BackendUnavailableError(
            f"`sampler: nvml` measures a GPU, but the model runs on {device!r}: an idle GPU "
            "would be charged for a CPU inference; set `energy.device: cuda` (or cuda:N), or "
            "use `sampler: rapl` / `sampler: estimate`"
        )
    if name in ("rapl", "estimate") and is_cuda(device):
        logger.warning(
            "sampler %s counts the host CPU only: the energy of the model's GPU (%s) is not in "
            "the figure; `sampler: nvml` (or auto) counts both",
            name,
            device,
        )


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
        BackendUnavailableError: the named backend cannot run here, or the device cannot be
            used (:func:`check_device`); the message lists the reason.
    """
    options = options or {}
    check_device(name, device)
    order = auto_order(device=device) if name == "auto" else (name,)
    tried: list[tuple[str, Availability]] = []
    for candidate in order:
        sampler = make_sampler(candidate, _options_for(candidate, options, device))
        avail = sampler.available()
        tried.append((candidate, avail))
        if avail:
            return Selection(sampler=sampler, tried=tuple(tried))
    reasons = "; ".join(f"{n}: {a.reason}" for n, a in tried)
    if order == ("nvml",) and name == "auto":
        hint = (
            "; a model on a GPU needs NVML for its energy: `sampler: rapl` or "
            "`sampler: estimate` would count the host CPU only"
        )
    elif name == "auto":
        hint = ""
    else:
        hint = ", or set `energy.sampler: auto` (falls back to estimate)"
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


def power_limit(
    power_w: float, *, torch_device: str | None = None
) -> contextlib.AbstractContextManager[None]:
    """A block run with the GPU's power limit at ``power_w`` (see :func:`.nvml.power_limit`).

    ``torch_device`` (``cuda[:N]``) limits the model's GPU only; None, every visible GPU.
    """
    from compresslab.energy.nvml import power_limit as _power_limit

    return _power_limit(power_w, torch_device=torch_device)
