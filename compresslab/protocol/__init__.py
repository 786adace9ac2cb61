"""The measurement protocol: warm-up, timed windows, repetitions until the CI is tight.

The protocol is written once, in ``docs/protocol.md``, with the item numbers every other
document cites (1 counter period, 2 idle power, 3 warm-up, 4 threads, 5 windows, 6 contention,
7 pairs, 8 confirmation, 9 isolation, 10 resolution, 11 never negative, 12 repeatability of
absolute figures, 13 repeatability of paired ratios). Here: :func:`measure_model` and
:func:`measure_callable` measure one workload (items 1 to 6 and 9 to 11),
:func:`measure_paired` and :func:`measure_models_paired` a candidate against a reference
(item 7); :mod:`.repeatability` and :mod:`.ratio_repeatability` hold items 12 and 13.

An implausible reading (negative, zero, not finite) raises
:class:`~compresslab.errors.MeasurementError`; it is never replaced by a guess.
"""

from __future__ import annotations

from compresslab.protocol.hostlock import host_lock
from compresslab.protocol.measure import (
    measure_callable,
    measure_model,
    measure_models_paired,
    measure_paired,
)
from compresslab.protocol.types import (
    EnergyResult,
    PairedResult,
    Protocol,
    Workload,
    energy_options,
    select_for,
)
from compresslab.protocol.windows import (
    counter_period_s,
    effective_threads,
    idle_power_w,
    torch_threads,
)
from compresslab.stats import ci95_halfwidth, t95

__all__ = [
    "EnergyResult",
    "PairedResult",
    "Protocol",
    "Workload",
    "ci95_halfwidth",
    "counter_period_s",
    "effective_threads",
    "energy_options",
    "host_lock",
    "idle_power_w",
    "measure_callable",
    "measure_model",
    "measure_models_paired",
    "measure_paired",
    "select_for",
    "t95",
    "torch_threads",
]
