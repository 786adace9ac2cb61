"""Choosing the sampler for a run: ``auto``'s documented order, the device check, and why.

See :mod:`compresslab.energy` for the order ``auto`` tries the backends in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from compresslab.energy._registry import make_sampler
from compresslab.energy.base import Availability, Sampler
from compresslab.errors import BackendUnavailableError

logger = logging.getLogger(__name__)


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
