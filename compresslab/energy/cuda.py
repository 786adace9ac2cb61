"""The CUDA device a model runs on, as torch sees it: is it usable, what is it, synchronise it.

``energy.device`` is ``cpu``, ``cuda`` (torch's current device) or ``cuda:N`` (the N-th device
CUDA makes visible, after ``CUDA_VISIBLE_DEVICES``). Every function here imports torch lazily and
never initialises CUDA in a process that has not used it already, except
:func:`torch_identity`, which is asked only once the model is about to run there.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from dataclasses import dataclass
from typing import Any

from compresslab.errors import MeasurementError

logger = logging.getLogger(__name__)

_DEVICE_RE = re.compile(r"^cuda(?::(?P<index>\d+))?$")


def is_cuda(device: str) -> bool:
    """Whether ``device`` names a CUDA device (``cuda`` or ``cuda:N``)."""
    return _DEVICE_RE.match(device) is not None


def cuda_index(device: str) -> int | None:
    """The N of ``cuda:N``; None for ``cuda`` (torch's current device) or ``cpu``."""
    match = _DEVICE_RE.match(device)
    if match is None or match["index"] is None:
        return None
    return int(match["index"])


def _torch() -> Any:
    """Import torch (a seam: tests replace it with a fake CUDA torch)."""
    import torch

    return torch


def device_problem(device: str) -> str | None:
    """Why a model cannot run on ``device`` here (None when it can, or for ``cpu``).

    The answer says what is wrong: a CPU-only torch build, no CUDA device visible, or no
    device N, and what to change.
    """
    if not is_cuda(device):
        return None
    torch = _torch()
    fix = "or set `energy.device: cpu`"
    if getattr(torch.version, "cuda", None) is None:
        return (
            f"`energy.device: {device}` needs a CUDA build of torch, but torch "
            f"{torch.__version__} is a CPU-only build: install a CUDA build "
            f"(https://pytorch.org/get-started/locally/), {fix}"
        )
    if not torch.cuda.is_available():
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        hides = visible is not None and (not visible.strip() or visible.strip().startswith("-"))
        why = (
            f"CUDA_VISIBLE_DEVICES={visible!r} hides every GPU"
            if hides
            else "no NVIDIA driver or GPU is usable (check `nvidia-smi`)"
        )
        return (
            f"`energy.device: {device}`: torch {torch.__version__} (CUDA "
            f"{torch.version.cuda}) sees no CUDA device: {why}; {fix}"
        )
    count = int(torch.cuda.device_count())
    index = cuda_index(device)
    if index is not None and index >= count:
        return (
            f"`energy.device: {device}`: there is no device {index}: CUDA sees {count} "
            f"device(s) (cuda:0 to cuda:{count - 1}, after CUDA_VISIBLE_DEVICES); "
            f"pick one of them, {fix}"
        )
    return None


def resolved_index(device: str) -> int:
    """The CUDA ordinal ``device`` runs on (``cuda`` means torch's current device)."""
    index = cuda_index(device)
    if index is not None:
        return index
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            if torch.cuda.is_available() and torch.cuda.is_initialized():
                return int(torch.cuda.current_device())
        except (RuntimeError, AttributeError):
            pass
    return 0


@dataclass(frozen=True)
class DeviceIdentity:
    """What identifies a GPU across CUDA and NVML: its UUID and PCI bus id."""

    uuid: str | None
    pci_bus_id: str | None


def torch_identity(index: int) -> DeviceIdentity | None:
    """UUID and PCI bus id of CUDA device ``index`` as torch sees it (None if torch cannot say).

    Only asked when torch is already loaded with CUDA available; then CUDA is initialised,
    which the model's run needs anyway.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        if not torch.cuda.is_available():
            return None
        props = torch.cuda.get_device_properties(index)
    except (RuntimeError, AssertionError, AttributeError) as e:
        logger.debug("torch cannot describe cuda:%d: %s", index, e)
        return None
    uuid = getattr(props, "uuid", None)
    uuid_text = None if uuid is None else str(uuid)
    if uuid_text is not None and not uuid_text.startswith(("GPU-", "MIG-")):
        uuid_text = f"GPU-{uuid_text}"
    pci: str | None = None
    bus = getattr(props, "pci_bus_id", None)
    if bus is not None:
        domain = int(getattr(props, "pci_domain_id", 0))
        dev = int(getattr(props, "pci_device_id", 0))
        pci = f"{domain:08x}:{int(bus):02x}:{dev:02x}.0"
    if uuid_text is None and pci is None:
        return None
    return DeviceIdentity(uuid_text, pci)


def synchronize(device: str | None) -> None:
    """Wait for the CUDA work queued on ``device`` (``None``: torch's current device).

    torch is looked up, not imported: a process that never imported torch, or never
    initialised CUDA, has no queued work, and importing torch here would cost seconds.

    Raises:
        MeasurementError: the queued work failed on the GPU.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return
    try:
        if not (torch.cuda.is_available() and torch.cuda.is_initialized()):
            return
        if device is None:
            torch.cuda.synchronize()
        else:
            torch.cuda.synchronize(device)
    except RuntimeError as e:
        raise MeasurementError(
            f"torch.cuda.synchronize() failed at a window edge ({e}): the measured work failed "
            "on the GPU; fix the model run first"
        ) from e
