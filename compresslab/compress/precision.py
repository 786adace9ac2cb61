"""Lower floating-point precision: the whole model cast to bfloat16 or float16."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from compresslab.availability import Availability
from compresslab.compress.base import CompressContext, CompressionMethod
from compresslab.errors import VariantError


class CastWrapper(nn.Module):
    """Runs ``inner`` in ``dtype``: casts floating inputs in and outputs back to float32."""

    def __init__(self, inner: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.inner = inner
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Cast, run, cast back."""
        if x.is_floating_point():
            x = x.to(self.dtype)
        out: torch.Tensor = self.inner(x)
        return out.float()


class PrecisionCast(CompressionMethod):
    """Cast every parameter and buffer to a 16-bit float type."""

    stage = "quantize"
    dtype: ClassVar[torch.dtype]

    def available(self) -> Availability:
        """Probes a tiny convolution and matmul in the target dtype on the CPU."""
        try:
            conv = nn.Conv2d(1, 2, 3).to(self.dtype)
            conv(torch.zeros(1, 1, 4, 4, dtype=self.dtype))
            torch.zeros(2, 2, dtype=self.dtype) @ torch.zeros(2, 2, dtype=self.dtype)
        except RuntimeError as e:
            return Availability(False, f"{self.dtype} kernels are missing on this CPU ({e})")
        return Availability(True, f"{self.dtype} convolution and matmul run on this CPU")

    def apply(self, model: nn.Module, params: Mapping[str, Any], ctx: CompressContext) -> nn.Module:
        """Cast the model and wrap it so that callers keep passing float32 inputs."""
        if any(p.dtype in (torch.qint8, torch.quint8) for p in model.state_dict().values()):
            raise VariantError(f"{self.name} cannot follow int8 quantization")
        return CastWrapper(model.to(self.dtype), self.dtype)


class Bf16(PrecisionCast):
    """bfloat16: float32's range with 8 bits of mantissa."""

    name = "bf16"
    summary = "cast to bfloat16"
    dtype = torch.bfloat16


class Fp16(PrecisionCast):
    """float16: more mantissa than bf16, far less range."""

    name = "fp16"
    summary = "cast to float16"
    dtype = torch.float16
