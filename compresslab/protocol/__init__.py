"""The measurement protocol: warm-up, timed windows, repetitions until the CI is tight.

For one workload (a model on a fixed batch, or any callable):

1. **Counter period**: a sampler that can (RAPL) probes how often its counter really updates;
   otherwise its nominal period is used.
2. **Idle power** (machine-level samplers only): the sampler reads ``idle_s`` of the machine
   at rest before the workload and again after it; their mean is the idle power, and their
   difference bounds how well it is known.
3. **Warm-up** for ``warmup_s`` (at least one call): caches, allocators and lazy kernels settle.
4. **Windows**: each opens the sampler, runs the workload back to back for at least
   ``window_s`` (and at least 10 of the counter's update periods, so a window is never
   shorter than the counter can resolve), then closes the sampler. Gross energy per inference
   of the window = its joules / inferences run in it; net = (joules - idle power x window
   duration) / inferences. Net is the primary figure: what the workload adds to the machine.
   Process-scoped samplers (estimate, model) have no idle to subtract: net equals gross.
5. **Contention**: every window records what other processes used meanwhile
   (:mod:`compresslab.contention`); the protocol's ``contention`` policy then keeps the window
   and flags the result (``flag``), waits for a quieter machine first (``wait``), or rejects
   the window and measures another (``reject``, bounded by ``max_rejected``).
6. **Repetition**: windows repeat until the 95% confidence half-width of the mean energy per
   inference is within ``target_ci_rel`` of the mean (after ``min_windows``), or ``max_windows``
   is reached; ``ci_target_met`` says which.
7. **Pairs** (:func:`measure_paired`): to compare a candidate with a reference, their windows
   alternate in ABBA order in the same span of time, and the ratio's interval comes from the
   pairs, so a load change hits both sides alike. A single span's ratio is then widened by
   the machine's measured spread of ratios between spans, in quadrature on the log scale
   (:mod:`compresslab.protocol.ratio_repeatability`; the pairs' own interval is kept beside it).
8. **Isolation**: on one host, measuring holds :func:`compresslab.hostlock.host_lock`
   exclusively: no other measurement, build or training of the lab runs meanwhile.
9. **Resolution**: a net figure whose interval reaches zero (the workload adds less than the
   idle noise) is an error that says how to lengthen the windows, never a point value.

An implausible reading (negative, zero, not finite) raises
:class:`~compresslab.errors.MeasurementError`; it is never replaced by a guess.
"""

from __future__ import annotations

from compresslab.hostlock import host_lock
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
