"""The analytic tier: energy from counted operations and bytes moved, labelled ``modeled``.

For each convolution and linear-like layer a forward hook counts multiply-accumulates (MACs)
by number format (fp32, fp16, bf16, int8) and the bytes of its output; the model's weights are
counted once per batch (read from DRAM) and the input once per example. Each count is priced
with energy-per-operation figures from a cited source:

- M. Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014, 45 nm:
  32-bit float add 0.9 pJ, multiply 3.7 pJ; 16-bit float add 0.4 pJ, multiply 1.1 pJ; 8-bit
  integer multiply 0.2 pJ, 32-bit integer add 0.1 pJ (int8 products accumulate in int32);
  64 bits from an 8 KB SRAM about 10 pJ; 64 bits from DRAM 1.3 to 2.6 nJ (midpoint used).
- bf16 is priced like fp16 (same multiplier width class; the paper has no bf16 figure).

The figure is deterministic run to run: it is what a CI runner without counters can gate on,
and it ranks variants that were not measured. It is **a ranking and a floor, not a
measurement**: newer process nodes are cheaper, elementwise operations, control, caches
misses beyond the simple model, idle power and cooling are not counted.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from compresslab.availability import Availability
from compresslab.energy.base import ComponentEnergy, Provenance, Reading, check_reading
from compresslab.errors import MeasurementError
from compresslab.modeled.costs import HOROWITZ_45NM, EnergyTable, modeled_j_per_inference
from compresslab.modeled.ops import count_ops


class ModelSampler:
    """The modeled tier as a sampler: counts the examples the bound model runs in a window.

    Call :meth:`bind` with the model and its input batch before measuring (``compresslab.measure``
    does), :meth:`unbind` afterwards.
    """

    name = "model"
    provenance = Provenance.MODELED
    scope = "process"

    def __init__(self, *, table: EnergyTable = HOROWITZ_45NM) -> None:
        self.table = table
        self._per_example: dict[str, float] | None = None
        self._examples = 0
        self._handle: torch.utils.hooks.RemovableHandle | None = None
        self._t0: tuple[int, float] | None = None

    def available(self) -> Availability:
        """Always available: it needs only the model."""
        return Availability(True, "counts operations with forward hooks (figures are modeled)")

    def update_period_s(self) -> float:
        """Counting is exact per call; a millisecond keeps windows meaningful for timing."""
        return 0.001

    def bind(self, model: nn.Module, inputs: torch.Tensor) -> None:
        """Count the model's operations on ``inputs`` and start counting its calls."""
        self.unbind()
        counts = count_ops(model, inputs)
        self._per_example = modeled_j_per_inference(
            counts, batch_size=int(inputs.shape[0]), table=self.table
        )

        def pre_hook(_m: nn.Module, args: tuple[object, ...]) -> None:
            x = args[0] if args else None
            self._examples += int(x.shape[0]) if isinstance(x, torch.Tensor) and x.dim() else 1

        self._handle = model.register_forward_pre_hook(pre_hook)

    def unbind(self) -> None:
        """Stop counting the model's calls."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def start(self) -> None:
        """Open a window."""
        if self._per_example is None:
            raise MeasurementError(
                "the model sampler is not bound to a model: call bind(model, inputs) first "
                "(compresslab.measure does this)"
            )
        self._t0 = (self._examples, time.perf_counter())

    def stop(self) -> Reading:
        """Modeled joules of the examples run in the window."""
        if self._t0 is None or self._per_example is None:
            raise MeasurementError("model sampler stopped before it was started")
        examples0, wall0 = self._t0
        self._t0 = None
        n = self._examples - examples0
        reading = Reading(
            duration_s=time.perf_counter() - wall0,
            components=tuple(
                ComponentEnergy(f"model-{k}", j * n, Provenance.MODELED)
                for k, j in self._per_example.items()
            ),
            details={"examples": float(n)},
        )
        return check_reading(reading, sampler=self.name)

    def metadata(self) -> dict[str, str]:
        """The figures used and what the model leaves out."""
        t = self.table
        return {
            "source": t.source,
            "pj_per_mac": ", ".join(f"{k} {v:g}" for k, v in t.pj_per_mac.items()),
            "pj_per_byte": f"DRAM {t.pj_per_byte_dram:g}, SRAM {t.pj_per_byte_sram:g}",
            "covers": (
                "MACs of convolutions and linear layers, weights read from DRAM once per batch, "
                "layer outputs through SRAM; not elementwise ops, control, idle or cooling: "
                "a ranking and a floor, not a measurement"
            ),
        }
