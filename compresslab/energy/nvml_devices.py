"""Which NVML devices to measure: the GPU torch runs the model on, found by UUID or PCI bus id.

NVML numbers GPUs in PCI bus order, ignoring ``CUDA_VISIBLE_DEVICES``; CUDA numbers the GPUs
that variable makes visible, in its own order (fastest first, unless
``CUDA_DEVICE_ORDER=PCI_BUS_ID``). So ``cuda:1`` is rarely NVML device 1. The mapping, best
first:

1. ``energy.nvml.device_indices``: NVML indices, as ``nvidia-smi`` lists them, taken as given.
2. torch's own description of ``cuda:N`` (its UUID, else its PCI bus id), looked up in NVML.
3. ``CUDA_VISIBLE_DEVICES``: its N-th entry, an NVML index or a ``GPU-<uuid>`` (or a unique
   prefix of one, as CUDA accepts) matched against NVML's UUIDs. An index entry, or no
   variable, maps exactly only with ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` or a single GPU; the
   metadata says so.

``MIG-<uuid>`` entries are refused: NVML reports no energy per MIG instance.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from compresslab.energy import cuda
from compresslab.errors import BackendUnavailableError

logger = logging.getLogger(__name__)


def cuda_visible_entries(value: str | None) -> tuple[str, ...] | None:
    """The entries of a ``CUDA_VISIBLE_DEVICES`` value, as CUDA reads them; None: unset.

    CUDA stops at the first entry that is not a valid device (a negative index such as ``-1``
    hides every device after it), and an empty value hides all.
    """
    if value is None:
        return None
    out: list[str] = []
    for raw in value.split(","):
        item = raw.strip()
        if not item:
            break
        if item.lstrip("-").isdigit():
            if int(item) < 0:
                break
            out.append(str(int(item)))
        elif item.startswith(("GPU-", "MIG-")):
            out.append(item)
        else:
            break
    return tuple(out)


@dataclass(frozen=True)
class Target:
    """One NVML device to measure, and how it was chosen (for the metadata)."""

    index: int
    handle: Any
    how: str


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _by_index(nv: Any, index: int, count: int, source: str) -> Any:
    if not 0 <= index < count:
        raise BackendUnavailableError(
            f"GPU index {index} from {source} does not exist: NVML sees {count} GPU(s) "
            f"(indices 0-{count - 1}); fix {source}"
        )
    return nv.nvmlDeviceGetHandleByIndex(index)


def _by_uuid_prefix(nv: Any, prefix: str, count: int) -> tuple[int, Any]:
    if prefix.startswith("MIG-"):
        raise BackendUnavailableError(
            f"CUDA_VISIBLE_DEVICES names a MIG instance ({prefix}): NVML reports no energy per "
            "MIG instance, only per whole GPU; measure on a whole GPU, or use "
            "`sampler: estimate`"
        )
    found = []
    for index in range(count):
        handle = nv.nvmlDeviceGetHandleByIndex(index)
        if _text(nv.nvmlDeviceGetUUID(handle)).startswith(prefix):
            found.append((index, handle))
    if len(found) != 1:
        what = "no GPU" if not found else f"{len(found)} GPUs"
        raise BackendUnavailableError(
            f"CUDA_VISIBLE_DEVICES entry {prefix} matches {what} NVML sees (`nvidia-smi -L` "
            "lists their UUIDs): fix CUDA_VISIBLE_DEVICES, or set `energy.nvml.device_indices`"
        )
    return found[0]


def _order_note(count: int) -> str:
    if count <= 1 or os.environ.get("CUDA_DEVICE_ORDER") == "PCI_BUS_ID":
        return "exact"
    logger.warning(
        "CUDA numbers GPUs fastest first unless CUDA_DEVICE_ORDER=PCI_BUS_ID, NVML by PCI bus: "
        "the GPU measured may not be the one the model runs on; set CUDA_DEVICE_ORDER=PCI_BUS_ID"
    )
    return "assumes CUDA_DEVICE_ORDER=PCI_BUS_ID (CUDA's default order may differ)"


def _by_identity(nv: Any, ident: cuda.DeviceIdentity) -> tuple[int, Any, str] | None:
    """The NVML device with torch's UUID, else its PCI bus id (None if NVML knows neither)."""
    for kind, key, lookup in (
        ("UUID", ident.uuid, "nvmlDeviceGetHandleByUUID"),
        ("PCI bus id", ident.pci_bus_id, "nvmlDeviceGetHandleByPciBusId"),
    ):
        if key is None:
            continue
        try:
            handle = getattr(nv, lookup)(key)
            return int(nv.nvmlDeviceGetIndex(handle)), handle, f"{kind} {key}"
        except nv.NVMLError as e:
            logger.debug("NVML has no GPU with %s %s: %s", kind, key, e)
    return None


def _for_torch_device(nv: Any, device: str, count: int) -> Target:
    ordinal = cuda.resolved_index(device)
    name = f"cuda:{ordinal}"
    ident = cuda.torch_identity(ordinal)
    if ident is not None:
        hit = _by_identity(nv, ident)
        if hit is not None:
            index, handle, key = hit
            return Target(index, handle, f"{name} = NVML {index} by its {key} (from torch)")
    entries = cuda_visible_entries(os.environ.get("CUDA_VISIBLE_DEVICES"))
    if entries is None:
        handle = _by_index(nv, ordinal, count, f"`energy.device: {device}`")
        note = _order_note(count)
        return Target(ordinal, handle, f"{name} = NVML {ordinal} (no CUDA_VISIBLE_DEVICES; {note})")
    if ordinal >= len(entries):
        raise BackendUnavailableError(
            f"there is no {name}: CUDA_VISIBLE_DEVICES={os.environ['CUDA_VISIBLE_DEVICES']!r} "
            f"makes {len(entries)} GPU(s) visible (cuda:0 to cuda:{len(entries) - 1}); fix "
            "`energy.device` or CUDA_VISIBLE_DEVICES"
        )
    entry = entries[ordinal]
    via = f"{name} = CUDA_VISIBLE_DEVICES[{ordinal}]"
    if entry.isdigit():
        index = int(entry)
        handle = _by_index(nv, index, count, f"CUDA_VISIBLE_DEVICES entry {ordinal}")
        return Target(index, handle, f"{via} = NVML {index} ({_order_note(count)})")
    index, handle = _by_uuid_prefix(nv, entry, count)
    return Target(index, handle, f"{via} = {entry} = NVML {index}")


def select_targets(
    nv: Any, *, device_indices: tuple[int, ...] | None, torch_device: str | None
) -> tuple[Target, ...]:
    """The NVML devices to measure (NVML must be initialised).

    Args:
        nv: the ``pynvml`` module.
        device_indices: explicit NVML indices (``energy.nvml.device_indices``).
        torch_device: the device the model runs on (``cuda`` or ``cuda:N``); None measures
            every GPU CUDA makes visible.

    Raises:
        BackendUnavailableError: no such GPU, or none selected (the message says why).
        NVMLError: a query failed (the caller translates it).
    """
    count = int(nv.nvmlDeviceGetCount())
    if count == 0:
        raise BackendUnavailableError(
            "no GPU to measure: NVML reports 0 GPUs; use `sampler: rapl` or `sampler: estimate`"
        )
    if device_indices is not None:
        source = "`energy.nvml.device_indices`"
        return tuple(
            Target(i, _by_index(nv, i, count, source), f"NVML {i} from {source}")
            for i in device_indices
        )
    if torch_device is not None and cuda.is_cuda(torch_device):
        return (_for_torch_device(nv, torch_device, count),)
    entries = cuda_visible_entries(os.environ.get("CUDA_VISIBLE_DEVICES"))
    if entries is None:
        return tuple(
            Target(i, nv.nvmlDeviceGetHandleByIndex(i), f"NVML {i} (every GPU)")
            for i in range(count)
        )
    if not entries:
        raise BackendUnavailableError(
            "no GPU to measure: CUDA_VISIBLE_DEVICES selects no GPU (it is empty or starts "
            "with -1); use `sampler: rapl` or `sampler: estimate`"
        )
    targets = []
    for k, entry in enumerate(entries):
        if entry.isdigit():
            index = int(entry)
            handle = _by_index(nv, index, count, "CUDA_VISIBLE_DEVICES")
        else:
            index, handle = _by_uuid_prefix(nv, entry, count)
        targets.append(Target(index, handle, f"CUDA_VISIBLE_DEVICES[{k}] = NVML {index}"))
    return tuple(targets)
