"""A GPU power limit set through NVML for a block of code, and restored afterwards.

A lower limit can save energy at little speed cost (Zeus's power-limit optimizer, Perseus).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from compresslab.energy.nvml_devices import select_targets
from compresslab.energy.nvml_library import init_nvml, load_nvml, shutdown_nvml
from compresslab.errors import BackendUnavailableError, RecipeError
from compresslab.units import mw_to_w

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def power_limit(
    power_w: float,
    *,
    device_indices: tuple[int, ...] | None = None,
    torch_device: str | None = None,
) -> Iterator[None]:
    """Run a block with the GPUs' power limit set to ``power_w``, restored afterwards.

    The GPUs are chosen as the sampler chooses them (``torch_device``: the model's GPU).

    A lower limit can save energy at little speed cost (Zeus's power-limit optimizer, Perseus).
    The previous limit of every device is restored on exit, also when the block raises.

    Raises:
        BackendUnavailableError: no NVML, no GPU, or no permission to set the limit (root, or
            a driver that allows it).
        RecipeError: ``power_w`` is outside a device's allowed range (the message gives it).
    """
    nv = load_nvml()
    init_nvml(nv)
    restored: list[tuple[Any, int]] = []
    try:
        for target in select_targets(nv, device_indices=device_indices, torch_device=torch_device):
            index, handle = target.index, target.handle
            low_mw, high_mw = nv.nvmlDeviceGetPowerManagementLimitConstraints(handle)
            target_mw = int(round(power_w * 1000))
            if not low_mw <= target_mw <= high_mw:
                raise RecipeError(
                    f"GPU {index} allows power limits from {mw_to_w(low_mw):g} W to "
                    f"{mw_to_w(high_mw):g} W, not {power_w:g} W: choose values in that range",
                    field="runtime.power_limit_w",
                )
            before_mw = int(nv.nvmlDeviceGetPowerManagementLimit(handle))
            try:
                nv.nvmlDeviceSetPowerManagementLimit(handle, target_mw)
            except nv.NVMLError as e:
                raise BackendUnavailableError(
                    f"cannot set GPU {index}'s power limit ({e}): it needs root (or "
                    "`nvidia-smi -pl` rights); drop runtime.power_limit_w from the recipe"
                ) from e
            restored.append((handle, before_mw))
            logger.info("GPU %d power limit %g W (was %g W)", index, power_w, mw_to_w(before_mw))
        yield
    finally:
        for handle, before_mw in reversed(restored):
            try:
                nv.nvmlDeviceSetPowerManagementLimit(handle, before_mw)
            except nv.NVMLError as e:  # pragma: no cover - logged, the block's result stands
                logger.error("could not restore a GPU power limit to %d mW: %s", before_mw, e)
        shutdown_nvml(nv)
