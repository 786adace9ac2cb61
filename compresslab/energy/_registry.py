"""The energy samplers by name: one factory per backend, each importing its module on first use.

:func:`make_sampler` builds a backend by the name a recipe gives (``energy.sampler``);
:data:`SAMPLER_NAMES` lists those names, and :func:`describe_samplers` says which can run here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from compresslab.energy.base import Availability, Provenance, Sampler
from compresslab.errors import BackendUnavailableError


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


def describe_samplers(*, device: str = "cpu") -> list[tuple[str, Provenance, Availability]]:
    """Every sampler with its provenance and whether it can run on this machine."""
    out = []
    for name in SAMPLER_NAMES:
        sampler = make_sampler(name)
        out.append((name, sampler.provenance, sampler.available()))
    return out
