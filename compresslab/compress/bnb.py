"""bitsandbytes quantization of linear layers: LLM.int8 (``bnb_int8``) and 4-bit (``bnb_4bit``).

bitsandbytes 0.50 runs on the CPU. Its layers quantize their weights when the module is moved
to a device (``.to("cpu")`` counts), so each replacement layer is built from the float weights
and then moved to the device those weights were on.

The classifier (every layer whose output has the model's output shape) and the task's
``keep_layers`` stay in float32 by default (``keep_classifier``), as Hugging Face's
bitsandbytes integration keeps the output head: it is small, and its errors go straight into
the logits. On this lab's CPUs the 4-bit layers run bitsandbytes' slow path (dequantize, then
a float matmul); the fused CPU kernel needs AVX512-BF16 and a download from the Hugging Face
hub. Whether either is cheaper than float32 is for the measurement to say.
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
from compresslab.compress.layers import linear_targets
from compresslab.errors import VariantError

_INSTALL = "pip install 'bitsandbytes>=0.45'"


def bitsandbytes() -> Any:
    """The ``bitsandbytes`` module, imported on first use without its import-time warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import bitsandbytes as bnb

    return bnb


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    """Put ``new`` where the submodule ``name`` is."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def _int8_layer(lin: nn.Linear, *, threshold: float) -> nn.Module:
    bnb = bitsandbytes()
    q = bnb.nn.Linear8bitLt(
        lin.in_features,
        lin.out_features,
        bias=lin.bias is not None,
        has_fp16_weights=False,
        threshold=threshold,
    )
    q.weight = bnb.nn.Int8Params(
        lin.weight.detach().clone(), requires_grad=False, has_fp16_weights=False
    )
    if lin.bias is not None:
        q.bias = nn.Parameter(lin.bias.detach().clone(), requires_grad=False)
    q = q.to(lin.weight.device)  # quantizes the weights (row-wise int8 and scales)
    if q.weight.dtype != torch.int8:
        raise VariantError(
            f"bitsandbytes did not quantize the weights to int8 (got {q.weight.dtype}): "
            f"upgrade bitsandbytes ({_INSTALL})"
        )
    q.eval()
    return q


def _4bit_layer(
    lin: nn.Linear, *, quant_type: str, compute_dtype: torch.dtype, blocksize: int
) -> nn.Module:
    bnb = bitsandbytes()
    q = bnb.nn.Linear4bit(
        lin.in_features,
        lin.out_features,
        bias=lin.bias is not None,
        compute_dtype=compute_dtype,
        compress_statistics=False,
        quant_type=quant_type,
    )
    q.weight = bnb.nn.Params4bit(
        lin.weight.detach().clone(),
        requires_grad=False,
        blocksize=blocksize,
        compress_statistics=False,
        quant_type=quant_type,
        module=q,
    )
    if lin.bias is not None:
        q.bias = nn.Parameter(lin.bias.detach().clone(), requires_grad=False)
    q = q.to(lin.weight.device)  # quantizes the weights (packed 4-bit and block scales)
    if not getattr(q.weight, "bnb_quantized", False):
        raise VariantError(
            f"bitsandbytes did not quantize the weights to 4 bits: upgrade it ({_INSTALL})"
        )
    q.eval()
    return q


def _probe(make: Any) -> Availability:
    """Run a tiny linear layer through the real kernel; compare with float32."""
    try:
        bnb = bitsandbytes()
    except ImportError as e:
        return Availability(False, f"bitsandbytes is not installed ({e}): {_INSTALL}")
    try:
        gen = torch.Generator().manual_seed(0)
        lin = nn.Linear(64, 16)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(16, 64, generator=gen) * 0.1)
        x = torch.randn(4, 64, generator=gen)
        q = make(lin)
        with torch.inference_mode():
            ref, out = lin(x), q(x)
    except Exception as e:  # any failure of the native library means "not here"
        return Availability(
            False, f"bitsandbytes {bnb.__version__} cannot run here ({type(e).__name__}: {e})"
        )
    if out.shape != ref.shape or not torch.isfinite(out).all():
        return Availability(False, f"bitsandbytes {bnb.__version__} gave wrong outputs here")
    err = float((out - ref).abs().max() / ref.abs().max())
    if err > 0.25:
        return Availability(
            False, f"bitsandbytes {bnb.__version__} is inaccurate here (relative error {err:.2f})"
        )
    return Availability(True, f"bitsandbytes {bnb.__version__} ran a {make.label} layer here")


def _labelled(label: str, fn: Any) -> Any:
    fn.label = label
    return fn


@functools.cache
def probe_int8() -> Availability:
    """Whether ``Linear8bitLt`` quantizes and runs here (cached for the process)."""
    return _probe(_labelled("Linear8bitLt", lambda lin: _int8_layer(lin, threshold=6.0)))


@functools.cache
def probe_4bit() -> Availability:
    """Whether ``Linear4bit`` (nf4) quantizes and runs here (cached for the process)."""
    return _probe(
        _labelled(
            "Linear4bit nf4",
            lambda lin: _4bit_layer(
                lin, quant_type="nf4", compute_dtype=torch.float32, blocksize=64
            ),
        )
    )


_KEEP_CLASSIFIER = ParamDef(
    "bool", True, doc="leave the classifier (and keep_layers) in float32, as HF's integration does"
)


class BnbInt8(CompressionMethod):
    """LLM.int8: int8 weights, outlier activation columns in 16-bit (bitsandbytes)."""

    name = "bnb_int8"
    stage = "quantize"
    summary = "bitsandbytes LLM.int8 Linear8bitLt (int8 weights, fp16 outliers)"
    params: ClassVar[Mapping[str, ParamDef]] = {
        "threshold": ParamDef(
            "float",
            6.0,
            low=0.0,
            high=100.0,
            doc="activations above this magnitude take the 16-bit path (0: none)",
        ),
        "keep_classifier": _KEEP_CLASSIFIER,
    }

    def available(self) -> Availability:
        """Probes a tiny ``Linear8bitLt`` through bitsandbytes' kernel on this machine."""
        return probe_int8()

    def apply(self, model: nn.Module, params: Mapping[str, Any], ctx: CompressContext) -> nn.Module:
        """Replace every (non-kept) ``nn.Linear`` by a quantized ``Linear8bitLt``."""
        targets = linear_targets(model, ctx, keep_classifier=bool(params["keep_classifier"]))
        for name, lin in targets:
            replace_module(model, name, _int8_layer(lin, threshold=float(params["threshold"])))
        return model


class Bnb4bit(CompressionMethod):
    """4-bit weights (NF4 or FP4 blocks with float scales) from bitsandbytes."""

    name = "bnb_4bit"
    stage = "quantize"
    summary = "bitsandbytes Linear4bit (nf4/fp4 weights, float compute)"
    params: ClassVar[Mapping[str, ParamDef]] = {
        "quant_type": ParamDef(
            "choice",
            "nf4",
            choices=("nf4", "fp4"),
            doc="4-bit code: nf4 (normal-float) or fp4; always set (bitsandbytes defaults to fp4)",
        ),
        "compute_dtype": ParamDef(
            "choice",
            "float32",
            choices=("float32", "bfloat16"),
            doc="dtype the dequantized weights are multiplied in",
        ),
        "blocksize": ParamDef(
            "choice", 64, choices=(32, 64, 128, 256), doc="weights per quantization scale"
        ),
        "keep_classifier": _KEEP_CLASSIFIER,
    }

    def available(self) -> Availability:
        """Probes a tiny ``Linear4bit`` (nf4) through bitsandbytes on this machine."""
        return probe_4bit()

    def apply(self, model: nn.Module, params: Mapping[str, Any], ctx: CompressContext) -> nn.Module:
        """Replace every (non-kept) ``nn.Linear`` by a quantized ``Linear4bit``."""
        targets = linear_targets(model, ctx, keep_classifier=bool(params["keep_classifier"]))
        dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[str(params["compute_dtype"])]
        for name, lin in targets:
            replace_module(
                model,
                name,
                _4bit_layer(
                    lin,
                    quant_type=str(params["quant_type"]),
                    compute_dtype=dtype,
                    blocksize=int(params["blocksize"]),
                ),
            )
        return model
