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

from compresslab.energy._power import power_limit, power_limit_availability
from compresslab.energy._registry import SAMPLER_NAMES, describe_samplers, make_sampler
from compresslab.energy._select import Selection, auto_order, check_device, select_sampler
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

__all__ = [
    "Availability",
    "ComponentEnergy",
    "CounterFaultError",
    "Provenance",
    "Reading",
    "Sampler",
    "Selection",
    "auto_order",
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
