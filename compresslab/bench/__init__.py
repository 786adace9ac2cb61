"""The variant bench: the one place that builds, evaluates and measures a variant.

A variant is a :class:`~compresslab.compress.VariantSpec` (the compression steps) run under a
:class:`Runtime` (threads, batch size, GPU power limit). The search, the notebook API,
``measure``, ``check``, ``export`` and the benchmarks all go through :class:`VariantBench`, so a
variant is built the same way wherever it is asked for (the same context: example inputs,
layers kept whole, seed and training data).

This layer takes plain values (a spec, a runtime) and never an Optuna trial: turning a trial
into a spec stays in :mod:`compresslab.study`.

Where a variant runs is the recipe's ``energy.device``: variants are built on the CPU (methods
whose layers quantize on a device, bitsandbytes, quantize on that one), then
:meth:`VariantBench.place` moves the built model to the device, and the inference batch, the
accuracy evaluation and the profile's forward pass follow it there.
"""

from compresslab.bench._evaluate import scored
from compresslab.bench._runtime import (
    RUNTIME_KNOBS,
    Runtime,
    Screened,
    compress_context,
    knob_availability,
)
from compresslab.bench._staged import (
    NO_CONFIRMATION_SPLIT,
    Looks,
    baseline_outcomes,
    confirm_accuracy,
    looks_of,
    tolerance_of,
)
from compresslab.bench._variant import VariantBench
from compresslab.protocol.timing import PartTimer

__all__ = [
    "NO_CONFIRMATION_SPLIT",
    "RUNTIME_KNOBS",
    "PartTimer",
    "Runtime",
    "Screened",
    "VariantBench",
    "compress_context",
    "confirm_accuracy",
    "Looks",
    "baseline_outcomes",
    "knob_availability",
    "looks_of",
    "scored",
    "tolerance_of",
]
