"""Static profile of a model: parameters, MACs per inference, bytes on disk and in memory, zeros.

Quantized layers are counted as they are stored: PyTorch's packed dynamic-int8 weights,
bitsandbytes' int8 and packed 4-bit weights with their scales, and torchao's tensor subclasses
(their inner int8 data and scales).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from compresslab.modeled.ops import count_ops, linear_like


@dataclass(frozen=True)
class ModelProfile:
    """What a model costs before it runs.

    Attributes:
        params: number of weights and biases (quantized packed weights included).
        macs_per_inference: multiply-accumulates of convolutions and linear layers per example.
        size_bytes: size of the serialized state dict (what lands on disk).
        memory_bytes: bytes the model holds in memory: parameters, buffers and quantized
            weights with their scales (each storage counted once).
        sparsity: fraction of exactly-zero weights in convolution and linear layers (biases
            excluded; quantized weights dequantized). Dense kernels still multiply the zeros:
            MACs do not drop with it.
    """

    params: int
    macs_per_inference: float
    size_bytes: int
    memory_bytes: int
    sparsity: float


def count_macs(model: nn.Module, example_inputs: torch.Tensor) -> float:
    """MACs per example of every convolution and linear-like layer (quantized ones included).

    The same forward-hook count that prices the modeled energy tier, summed over formats.
    """
    return sum(count_ops(model, example_inputs).macs.values())


def count_params(model: nn.Module) -> int:
    """Parameters, counting the packed int8 weights of dynamically quantized layers."""
    n = 0
    for value in model.state_dict().values():
        if isinstance(value, torch.Tensor):
            n += value.numel()
        elif isinstance(value, tuple):  # packed params: (weight, bias)
            n += sum(v.numel() for v in value if isinstance(v, torch.Tensor))
    return n


def serialized_size(model: nn.Module) -> int:
    """Bytes of ``torch.save(model.state_dict())``."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.tell()


def _tensors_of(value: Any) -> list[torch.Tensor]:
    """The plain tensors inside ``value``: itself, a tensor subclass's parts, a quant state."""
    if isinstance(value, torch.Tensor):
        flatten = getattr(value, "__tensor_flatten__", None)
        if flatten is not None and type(value) not in (torch.Tensor, nn.Parameter):
            names, _ = flatten()
            return [t for n in names for t in _tensors_of(getattr(value, n))]
        out = [value]
        # bitsandbytes keeps scales beside the weight: Int8Params.SCB, Params4bit.quant_state.
        out += _tensors_of(getattr(value, "SCB", None))
        out += _tensors_of(getattr(value, "quant_state", None))
        return out
    if isinstance(value, tuple | list):
        return [t for v in value for t in _tensors_of(v)]
    if value is not None and hasattr(value, "absmax"):  # a bitsandbytes QuantState
        parts = [getattr(value, a, None) for a in ("absmax", "code", "offset", "state2")]
        return [t for p in parts for t in _tensors_of(p)]
    return []


def _storage_key_and_bytes(t: torch.Tensor) -> tuple[Any, int]:
    if t.is_quantized:  # no untyped storage to share: count its int values and scales
        scales = t.q_per_channel_scales().numel() * 12 if t.qscheme() in _PER_CHANNEL else 12
        return id(t), t.numel() * t.element_size() + scales
    try:
        storage = t.untyped_storage()
    except (RuntimeError, NotImplementedError):
        return id(t), t.numel() * t.element_size()
    return (storage.data_ptr(), storage.nbytes()), storage.nbytes()


_PER_CHANNEL = (torch.per_channel_affine, torch.per_channel_symmetric)


def memory_bytes(model: nn.Module) -> int:
    """Bytes held by parameters, buffers and quantized weights (shared storage counted once)."""
    seen: set[Any] = set()
    total = 0

    def add(value: Any) -> None:
        nonlocal total
        for t in _tensors_of(value):
            key, nbytes = _storage_key_and_bytes(t)
            if key not in seen:
                seen.add(key)
                total += nbytes

    for module in model.modules():
        for p in module.parameters(recurse=False):
            add(p)
        for b in module.buffers(recurse=False):
            add(b)
        if _packs_weights(module):
            add(module._weight_bias())  # type: ignore[operator]
    return total


def _packs_weights(module: nn.Module) -> bool:
    """True for the innermost holder of torch's packed quantized weights (LinearPackedParams).

    Its parent, the quantized Linear, exposes the same ``_weight_bias``; asking only the
    innermost one counts each packed weight once.
    """
    return callable(getattr(module, "_weight_bias", None)) and not any(
        callable(getattr(c, "_weight_bias", None)) for c in module.children()
    )


def _dense_weight(module: nn.Module) -> torch.Tensor | None:
    """A module's weight as floats (quantized ones dequantized), or None if it has none."""
    if isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d):
        return module.weight.detach()
    weight_bias = getattr(module, "_weight_bias", None)
    if callable(weight_bias):
        qweight: torch.Tensor = weight_bias()[0]
        return qweight.dequantize()
    if not linear_like(module):
        return None
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor):
        return None
    state = getattr(weight, "quant_state", None)
    if state is not None and getattr(weight, "bnb_quantized", False):
        from compresslab.compress.bnb import bitsandbytes

        deq: torch.Tensor = bitsandbytes().functional.dequantize_4bit(weight.data, state)
        return deq
    if type(weight) not in (torch.Tensor, nn.Parameter) and hasattr(weight, "dequantize"):
        return weight.dequantize()
    return weight.detach()  # bitsandbytes int8: zero stays zero in int8


def weight_sparsity(model: nn.Module) -> float:
    """Fraction of exactly-zero weights in convolution and linear layers (0 if there are none)."""
    zeros = total = 0
    with torch.no_grad():
        for module in model.modules():
            w = _dense_weight(module)
            if w is None:
                continue
            zeros += int((w == 0).sum())
            total += w.numel()
    return zeros / total if total else 0.0


def profile_model(model: nn.Module, example_inputs: torch.Tensor) -> ModelProfile:
    """Parameters, MACs per inference, sizes on disk and in memory, and sparsity of ``model``."""
    return ModelProfile(
        params=count_params(model),
        macs_per_inference=count_macs(model, example_inputs),
        size_bytes=serialized_size(model),
        memory_bytes=memory_bytes(model),
        sparsity=weight_sparsity(model),
    )
