"""Static profile of a model: parameters, multiply-accumulates per inference, size in bytes."""

from __future__ import annotations

import io
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ModelProfile:
    """What a model costs before it runs.

    Attributes:
        params: number of weights and biases (quantized packed weights included).
        macs_per_inference: multiply-accumulates of convolutions and linear layers per example.
        size_bytes: size of the serialized state dict (what lands on disk).
    """

    params: int
    macs_per_inference: float
    size_bytes: int


def _linear_like(m: nn.Module) -> bool:
    return hasattr(m, "in_features") and hasattr(m, "out_features")


def count_macs(model: nn.Module, example_inputs: torch.Tensor) -> float:
    """MACs per example of every convolution and linear-like layer (quantized ones included)."""
    total = 0.0
    hooks = []

    def conv_hook(m: nn.Module, _inp: object, out: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(m, nn.Conv1d | nn.Conv2d | nn.Conv3d)
        kernel = 1
        for k in m.kernel_size:
            kernel *= k
        total += out.numel() * (m.in_channels // m.groups) * kernel

    def linear_hook(m: nn.Module, _inp: object, out: torch.Tensor) -> None:
        nonlocal total
        total += out.numel() * int(m.in_features)  # type: ignore[arg-type]

    for module in model.modules():
        if isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d):
            hooks.append(module.register_forward_hook(conv_hook))
        elif _linear_like(module) and not any(_linear_like(c) for c in module.children()):
            hooks.append(module.register_forward_hook(linear_hook))
    try:
        with torch.inference_mode():
            model(example_inputs)
    finally:
        for h in hooks:
            h.remove()
    return total / example_inputs.shape[0]


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


def profile_model(model: nn.Module, example_inputs: torch.Tensor) -> ModelProfile:
    """Parameters, MACs per inference and serialized size of ``model``."""
    return ModelProfile(
        params=count_params(model),
        macs_per_inference=count_macs(model, example_inputs),
        size_bytes=serialized_size(model),
    )
