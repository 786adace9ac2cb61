"""Dynamic int8 quantization of Linear layers with PyTorch's eager-mode ``quantize_dynamic``.

Weights are stored as int8; activations are quantized on the fly per batch. PyTorch deprecates
``torch.ao.quantization`` in favour of torchao but still ships it; its deprecation warnings are
filtered here, and its presence is feature-detected rather than assumed.

No quantized-engine knob (x86, fbgemm, onednn, qnnpack) is offered. The engine is global
(``torch.backends.quantized.engine``) and the packed weights are engine-specific: a model
packed under qnnpack or onednn and then deep-copied, pickled or loaded from a state dict is
silently repacked under whatever engine is global at that moment. Checked on torch 2.13: after
restoring the default engine, a deep copy of a qnnpack- or onednn-packed model gave different
outputs from the original. A per-variant engine would need the global switched around every
forward pass (and every copy), which no measurement here should depend on; the variant runs
with torch's default engine for the CPU, which the report names.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from compresslab.availability import Availability
from compresslab.compress.base import CompressContext, CompressionMethod, ParamDef
from compresslab.compress.layers import LAYER_KINDS, linear_targets
from compresslab.errors import VariantError


def _quantize_dynamic() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from torch.ao.quantization import quantize_dynamic

    return quantize_dynamic


@functools.cache
def _probe() -> Availability:
    try:
        quantize_dynamic = _quantize_dynamic()
    except ImportError as e:
        return Availability(False, f"torch.ao.quantization.quantize_dynamic is gone ({e})")
    engine = torch.backends.quantized.engine
    if engine in (None, "none"):
        return Availability(False, "torch has no quantized engine for this CPU")
    try:
        model = nn.Sequential(nn.Linear(16, 4))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            q = quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
        x = torch.ones(2, 16)
        with torch.inference_mode():
            err = float((q(x) - model(x)).abs().max())
    except RuntimeError as e:
        return Availability(False, f"torch's dynamic int8 kernel fails on this CPU ({e})")
    if not err < 0.1:
        return Availability(False, f"torch's dynamic int8 kernel is wrong here (error {err:.3g})")
    return Availability(True, f"dynamic int8 linear ran with torch's quantized engine '{engine}'")


class DynamicInt8(CompressionMethod):
    """int8 weights and dynamically quantized activations for ``nn.Linear`` layers.

    By default every ``nn.Linear``. Which ones decides the outcome on a language model (the
    per-tensor activation scale is ruined by outlier channels in some layers), so they can be
    chosen: only a transformer's ``attention`` or ``mlp`` layers, the output layer (a
    language model's ``lm_head``) left in float32, the first and last blocks kept.
    """

    name = "dynamic_int8"
    stage = "quantize"
    summary = "torch dynamic int8 quantization of Linear layers (CPU)"
    params: ClassVar[Mapping[str, ParamDef]] = {
        "layers": ParamDef(
            "choice",
            "all",
            choices=LAYER_KINDS,
            doc="every Linear, or only a transformer's attention or MLP (feed-forward) layers",
        ),
        "keep_classifier": ParamDef(
            "bool", False, doc="leave the output layer (the classifier, lm_head) in float32"
        ),
        "keep_ends": ParamDef(
            "int",
            0,
            low=0,
            high=32,
            doc="leave the first and the last this many transformer blocks in float32",
        ),
    }

    def available(self) -> Availability:
        """Probes a tiny linear layer through torch's dynamic int8 kernel on this CPU."""
        return _probe()

    def apply(self, model: nn.Module, params: Mapping[str, Any], ctx: CompressContext) -> nn.Module:
        """Replace the selected Linear layers with dynamically quantized ones."""
        layers = str(params.get("layers", "all"))
        keep_classifier = bool(params.get("keep_classifier", False))
        keep_ends = int(params.get("keep_ends", 0))
        spec: set[Any]
        if layers == "all" and not keep_classifier and keep_ends == 0:
            if not any(isinstance(m, nn.Linear) for m in model.modules()):
                raise VariantError(
                    "dynamic_int8 found no nn.Linear layer to quantize in this model"
                )
            spec = {nn.Linear}
        else:
            targets = linear_targets(
                model, ctx, keep_classifier=keep_classifier, layers=layers, keep_ends=keep_ends
            )
            spec = {name for name, _ in targets}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.filterwarnings("ignore", message=".*deprecated.*", category=UserWarning)
            out: nn.Module = _quantize_dynamic()(model, spec, dtype=torch.qint8)
        return out
