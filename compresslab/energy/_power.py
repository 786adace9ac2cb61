"""A GPU power limit for a block of code, behind the package's lazy NVML import."""

from __future__ import annotations

import contextlib

from compresslab.energy.base import Availability


def power_limit_availability() -> Availability:
    """Whether a GPU power limit can be set here (NVML and a GPU), and why (not)."""
    from compresslab.energy.nvml import NvmlSampler

    return NvmlSampler().available()


def power_limit(
    power_w: float, *, torch_device: str | None = None
) -> contextlib.AbstractContextManager[None]:
    """A block run with the GPU's power limit at ``power_w``.

    See :func:`.nvml_power_limit.power_limit`. ``torch_device`` (``cuda[:N]``) limits the
    model's GPU only; None, every visible GPU.
    """
    from compresslab.energy.nvml_power_limit import power_limit as _power_limit

    return _power_limit(power_w, torch_device=torch_device)
