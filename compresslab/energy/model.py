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
from dataclasses import dataclass, field

import torch
from torch import nn

from compresslab.energy.base import (
    Availability,
    ComponentEnergy,
    Provenance,
    Reading,
    check_reading,
)
from compresslab.errors import MeasurementError

_PJ = 1e-12


@dataclass(frozen=True)
class EnergyTable:
    """Energy per operation and per byte moved, with where the figures come from."""

    source: str
    pj_per_mac: dict[str, float]
    pj_per_byte_dram: float
    pj_per_byte_sram: float


HOROWITZ_45NM = EnergyTable(
    source="M. Horowitz, ISSCC 2014, 45 nm (bf16 priced as fp16; int8 MACs accumulate in int32)",
    pj_per_mac={"fp32": 3.7 + 0.9, "fp16": 1.1 + 0.4, "bf16": 1.1 + 0.4, "int8": 0.2 + 0.1},
    pj_per_byte_dram=1950.0 / 8,
    pj_per_byte_sram=10.0 / 8,
)

_FLOAT_CLASS = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


@dataclass(frozen=True)
class OpCounts:
    """What one inference (one example) does, counted by :func:`count_ops`."""

    macs: dict[str, float] = field(default_factory=dict)
    weight_bytes: float = 0.0
    activation_bytes_per_example: float = 0.0
    input_bytes_per_example: float = 0.0


def linear_like(m: nn.Module) -> bool:
    """True for layers with ``in_features``/``out_features`` (nn.Linear, quantized, bnb)."""
    return hasattr(m, "in_features") and hasattr(m, "out_features")


def _mac_class(module: nn.Module) -> str:
    """The number format a layer multiplies in."""
    name = type(module).__name__
    compute = getattr(module, "compute_dtype", None)
    if isinstance(compute, torch.dtype) and compute in _FLOAT_CLASS:
        return _FLOAT_CLASS[compute]  # bnb 4-bit: weights dequantized to the compute dtype
    if ".quantized" in type(module).__module__ or "8bit" in name:
        return "int8"  # torch dynamic int8 (torch.ao.nn.quantized), bnb Linear8bitLt
    weight = getattr(module, "weight", None)
    if isinstance(weight, torch.Tensor):
        if weight.dtype in _FLOAT_CLASS:
            return _FLOAT_CLASS[weight.dtype]
        if weight.dtype in (torch.int8, torch.uint8, torch.qint8, torch.quint8):
            return "int8"
    return "fp32"


def _tensor_bytes(value: object) -> float:
    if isinstance(value, torch.Tensor):
        return float(value.numel() * value.element_size())
    if isinstance(value, tuple | list):
        return sum(_tensor_bytes(v) for v in value)
    return 0.0


def count_ops(model: nn.Module, example_inputs: torch.Tensor) -> OpCounts:
    """Count MACs by format and bytes moved for one forward pass, per example."""
    macs: dict[str, float] = {}
    act_bytes = 0.0
    hooks = []

    def hook(m: nn.Module, _inp: object, out: torch.Tensor) -> None:
        nonlocal act_bytes
        if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Conv3d):
            kernel = 1
            for k in m.kernel_size:
                kernel *= k
            n = out.numel() * (m.in_channels // m.groups) * kernel
        else:
            n = out.numel() * int(m.in_features)  # type: ignore[arg-type]
        cls = _mac_class(m)
        macs[cls] = macs.get(cls, 0.0) + n
        act_bytes += _tensor_bytes(out)

    for module in model.modules():
        conv = isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d)
        linear = linear_like(module) and not any(linear_like(c) for c in module.children())
        if conv or linear:
            hooks.append(module.register_forward_hook(hook))
    try:
        with torch.inference_mode():
            model(example_inputs)
    finally:
        for h in hooks:
            h.remove()
    batch = example_inputs.shape[0]
    weight_bytes = sum(_tensor_bytes(v) for v in model.state_dict().values())
    return OpCounts(
        macs={k: v / batch for k, v in macs.items()},
        weight_bytes=weight_bytes,
        activation_bytes_per_example=act_bytes / batch,
        input_bytes_per_example=_tensor_bytes(example_inputs) / batch,
    )


def modeled_j_per_inference(
    counts: OpCounts, *, batch_size: int, table: EnergyTable = HOROWITZ_45NM
) -> dict[str, float]:
    """Joules per inference by component: ``compute``, ``dram`` and ``sram``.

    Weights are read from DRAM once per batch (so their cost per inference falls with the batch
    size); inputs come from DRAM; layer outputs are written to and read back from SRAM.
    """
    compute_pj = sum(n * table.pj_per_mac[cls] for cls, n in counts.macs.items())
    dram_pj = (
        counts.weight_bytes / batch_size + counts.input_bytes_per_example
    ) * table.pj_per_byte_dram
    sram_pj = 2 * counts.activation_bytes_per_example * table.pj_per_byte_sram
    return {"compute": compute_pj * _PJ, "dram": dram_pj * _PJ, "sram": sram_pj * _PJ}


class ModelSampler:
    """The modeled tier as a sampler: counts the examples the bound model runs in a window.

    Call :meth:`bind` with the model and its input batch before measuring (``measure_model``
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
                "(measure_model does this)"
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
