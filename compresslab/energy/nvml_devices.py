"""Which NVML devices to measure: the GPU torch runs the model on, found by UUID or PCI bus id.

NVML numbers GPUs in PCI bus order, ignoring ``CUDA_VISIBLE_DEVICES``; CUDA numbers the GPUs
that variable makes visible, in its own order (fastest first, unless
``CUDA_DEVICE_ORDER=PCI_BUS_ID``). So ``cuda:1`` is rarely NVML device 1. The mapping, best
first:

1. ``energy.nvml.device_indices``: NVML indices, as ``nvidia-smi`` lists them, taken as given
   once they include the model's GPU (see below).
2. torch's own description of ``cuda:N`` (its UUID, else its PCI bus id), looked up in NVML.
3. ``CUDA_VISIBLE_DEVICES``: its N-th entry, an NVML index or a ``GPU-<uuid>`` (or a unique
   prefix of one, as CUDA accepts) matched against NVML's UUIDs. An index entry, or no
   variable, maps exactly only with ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` or a single GPU; the
   metadata says so.

The model's GPU must be a whole GPU: NVML's energy counter is per physical GPU, so a MIG
slice (a ``MIG-<uuid>``, or a GPU in MIG mode, which CUDA only shows as slices) is refused
rather than measured whole. ``device_indices`` must include the model's GPU wherever that GPU
is known for sure (by UUID or PCI bus id, or an index in a known order); where CUDA's order is
only assumed, the indices are the fix for it and are taken as given.
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
    """One NVML device to measure, how it was chosen (for the metadata), and whether surely.

    ``exact`` is False where the model's GPU was found by an index in CUDA's assumed order.
    """

    index: int
    handle: Any
    how: str
    exact: bool = True


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _by_index(nv: Any, index: int, count: int, source: str) -> Any:
    if not 0 <= index < count:
        raise BackendUnavailableError(
            f"GPU index {index} from {source} does not exist: NVML sees {count} GPU(s) "
            f"(indices 0-{count - 1}); fix {source}"
        )
    return nv.nvmlDeviceGetHandleByIndex(index)


def _mig_refusal(what: str, index: int | None = None) -> BackendUnavailableError:
    gpu = "N" if index is None else str(index)
    return BackendUnavailableError(
        f"the model runs on a MIG slice ({what}): NVML reports no energy per MIG instance; its "
        "energy counter is per physical GPU and counts every slice's work; measure on a whole "
        f"GPU with nothing else on it (MIG off: `nvidia-smi -i {gpu} -mig 0`), or use "
        "`sampler: estimate`"
    )


def _refuse_mig_mode(nv: Any, target: Target) -> Target:
    """``target`` unless its GPU is in MIG mode (then CUDA runs the model on a slice of it)."""
    try:
        current = nv.nvmlDeviceGetMigMode(target.handle)[0]
    except nv.NVMLError as e:  # pre-Ampere GPUs have no MIG mode
        logger.debug("NVML %d has no MIG mode: %s", target.index, e)
        return target
    if int(current) == nv.NVML_DEVICE_MIG_ENABLE:
        raise _mig_refusal(f"{target.how}, and NVML {target.index} is in MIG mode", target.index)
    return target


def _by_uuid_prefix(nv: Any, prefix: str, count: int) -> tuple[int, Any]:
    if prefix.startswith("MIG-"):
        raise _mig_refusal(f"CUDA_VISIBLE_DEVICES names {prefix}")
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
    if ident is not None and ident.uuid is not None and ident.uuid.startswith("MIG-"):
        # Its PCI bus id is its parent's: looking that up would measure the whole GPU.
        raise _mig_refusal(f"torch names {name} {ident.uuid}")
    if ident is not None:
        hit = _by_identity(nv, ident)
        if hit is not None:
            index, handle, key = hit
            return Target(index, handle, f"{name} = NVML {index} by its {key} (from torch)")
    entries = cuda_visible_entries(os.environ.get("CUDA_VISIBLE_DEVICES"))
    if entries is None:
        handle = _by_index(nv, ordinal, count, f"`energy.device: {device}`")
        note = _order_note(count)
        how = f"{name} = NVML {ordinal} (no CUDA_VISIBLE_DEVICES; {note})"
        return Target(ordinal, handle, how, exact=note == "exact")
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
        note = _order_note(count)
        return Target(index, handle, f"{via} = NVML {index} ({note})", exact=note == "exact")
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
        BackendUnavailableError: no such GPU, or none selected, the model's GPU is a MIG
            slice, or ``device_indices`` leave out the model's GPU (the message says why).
        NVMLError: a query failed (the caller translates it).
    """
    count = int(nv.nvmlDeviceGetCount())
    if count == 0:
        raise BackendUnavailableError(
            "no GPU to measure: NVML reports 0 GPUs; use `sampler: rapl` or `sampler: estimate`"
        )
    model = None
    if torch_device is not None and cuda.is_cuda(torch_device):
        model = _for_torch_device(nv, torch_device, count)
        if model.exact or device_indices is None:  # a guess the indices replace is not asked
            model = _refuse_mig_mode(nv, model)
    if device_indices is not None:
        source = "`energy.nvml.device_indices`"
        if model is not None and model.exact and model.index not in device_indices:
            raise BackendUnavailableError(
                f"{source} {list(device_indices)} does not include the GPU the model runs on "
                f"({model.how}): the figures would be another GPU's; add {model.index} to it, "
                "or remove it to measure the model's GPU"
            )
        return tuple(
            Target(i, _by_index(nv, i, count, source), f"NVML {i} from {source}")
            for i in device_indices
        )
    if model is not None:
        return (model,)
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
