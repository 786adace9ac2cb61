"""Dynamic int8 quantization of Linear layers with PyTorch's eager-mode ``quantize_dynamic``.

Weights are stored as int8; activations are quantized on the fly per batch. PyTorch deprecates
``torch.ao.quantization`` in favour of torchao but still ships it; its deprecation warnings are
filtered here, and its presence is feature-detected rather than assumed.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from compresslab.compress.base import CompressContext, CompressionMethod
from compresslab.energy.base import Availability
from compresslab.errors import VariantError


def _quantize_dynamic() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from torch.ao.quantization import quantize_dynamic

    return quantize_dynamic


class DynamicInt8(CompressionMethod):
    """int8 weights and dynamically quantized activations for every ``nn.Linear``."""

    name = "dynamic_int8"
    stage = "quantize"
    summary = "torch dynamic int8 quantization of Linear layers (CPU)"

    def available(self) -> Availability:
        """Needs torch's eager quantization and a quantized engine for this CPU."""
        try:
            _quantize_dynamic()
        except ImportError as e:
            return Availability(False, f"torch.ao.quantization.quantize_dynamic is gone ({e})")
        engine = torch.backends.quantized.engine
        if engine in (None, "none"):
            return Availability(False, "torch has no quantized engine for this CPU")
        return Availability(True, f"torch quantized engine '{engine}'")

    def apply(self, model: nn.Module, params: Mapping[str, Any], ctx: CompressContext) -> nn.Module:
        """Replace Linear layers with dynamically quantized ones."""
        if not any(isinstance(m, nn.Linear) for m in model.modules()):
            raise VariantError("dynamic_int8 found no nn.Linear layer to quantize in this model")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.filterwarnings("ignore", message=".*deprecated.*", category=UserWarning)
            out: nn.Module = _quantize_dynamic()(model, {nn.Linear}, dtype=torch.qint8)
        return out
