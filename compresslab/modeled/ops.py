"""Counting what one forward pass does: multiply-accumulates by number format, bytes moved.

Shared by the compression methods (a variant's profile) and the modeled energy tier (which
prices these counts), so it sits below both.
"""

from __future__ import annotations

import torch
from torch import nn

from compresslab.records import OpCounts

_FLOAT_CLASS = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


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
