"""bitsandbytes quantization of linear layers: LLM.int8 (``bnb_int8``) and 4-bit (``bnb_4bit``).

bitsandbytes 0.50 runs on the CPU. Its layers quantize their weights when the module is moved
to a device (``.to("cpu")`` counts), so each replacement layer is built from the float weights
and then moved to the device the variant will run on (``CompressContext.device``, i.e.
``energy.device``; the CPU by default): on a GPU it quantizes with the CUDA kernels and
layout, and no CPU-quantized state has to follow the model to the GPU afterwards (moving a
whole model reaches a ``Linear8bitLt``'s parameters but not its int8 state).

The classifier (every layer whose output has the model's output shape) and the task's
``keep_layers`` stay in float32 by default (``keep_classifier``), as Hugging Face's
bitsandbytes integration keeps the output head: it is small, and its errors go straight into
the logits.

4-bit layers take one of two CPU paths, chosen by bitsandbytes per layer at its first
inference call (eval mode, input without gradient):

- unpacked (most CPUs): dequantize the weights, then a float matmul in ``compute_dtype``.
  Every layer shape runs.
- packed (CPUs whose bitsandbytes native library reports AVX512-BF16): the weights are
  repacked for a fused bf16 kernel (bitsandbytes' own, or the Hugging Face hub's when the
  ``kernels`` package is installed), which always computes in bfloat16. Repacking needs
  ``out_features % 32 == 0`` and ``in_features % blocksize == 0``; other layers would fail,
  so :func:`fits_4bit` keeps them in float32 and the variant says how many
  (:func:`~compresslab.compress.base.add_note`).

Whether either path is cheaper than float32 is for the measurement to say.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from compresslab.availability import Availability
from compresslab.compress.base import CompressContext, CompressionMethod, ParamDef, add_note
from compresslab.compress.bnb_layers import (
    INT8_CAST_LOG,
    PACKED_BLOCK_N,
    bitsandbytes,
    four_bit_layer,
    int8_layer,
    probe_4bit,
    probe_int8,
    replace_module,
    target_device,
)
from compresslab.compress.layers import linear_targets
from compresslab.errors import VariantError

__all__ = [
    "INT8_CAST_LOG",
    "INT8_CAST_NOTE",
    "PACKED_BLOCK_N",
    "Bnb4bit",
    "BnbInt8",
    "bitsandbytes",
    "fits_4bit",
    "int8_layer",
    "packs_for_cpu",
    "target_device",
]

log = logging.getLogger(__name__)

INT8_CAST_NOTE = (
    "LLM.int8() casts float32 inputs to float16 on every call (bitsandbytes' documented "
    "behaviour; the cast is part of the measured energy)"
)


def packs_for_cpu(device: torch.device) -> bool:
    """Whether a ``Linear4bit`` on ``device`` repacks its weights for the fused CPU kernel.

    bitsandbytes 0.50 decides it per layer: ``Linear4bit.__init__`` stores
    ``has_avx512bf16()`` (``bitsandbytes/nn/modules.py:573``, the native library's CPU check,
    ``functional.py:1798``), and ``Linear4bit.forward`` (``nn/modules.py:613-620``) repacks
    when that is true and the input is on the CPU, in eval mode, without gradient, which is
    every inference call. The check is read where ``Linear4bit`` reads it, so a test that
    patches ``bitsandbytes.nn.modules.has_avx512bf16`` moves both together.
    """
    if device.type != "cpu":
        return False
    check = getattr(bitsandbytes().nn.modules, "has_avx512bf16", None)
    return bool(check()) if callable(check) else False  # older releases never repack


def fits_4bit(lin: nn.Linear, *, blocksize: int, device: str = "cpu") -> bool:
    """Whether ``Linear4bit`` runs this layer's shape here: the one per-layer rule.

    Mirrors bitsandbytes 0.50: on the unpacked path every shape runs; on the packed CPU path
    (:func:`packs_for_cpu`) ``functional._convert_weight_packed_for_cpu`` asserts
    ``out_features % 32 == 0`` (``functional.py:1696``) and reshapes the block scales to
    ``[out_features, in_features // blocksize]`` (``functional.py:1720``), which fails unless
    ``in_features % blocksize == 0`` (``in_features >= blocksize`` is not enough: 96 inputs
    in blocks of 64 fail). Layers that do not fit stay float32.
    """
    if not packs_for_cpu(target_device(lin, device)):
        return True
    return lin.out_features % PACKED_BLOCK_N == 0 and lin.in_features % blocksize == 0


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
            layer = int8_layer(lin, threshold=float(params["threshold"]), device=ctx.device)
            replace_module(model, name, layer)
        if targets and str(target_device(targets[0][1], ctx.device)).startswith("cuda"):
            add_note(model, INT8_CAST_NOTE)
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
            doc="dtype the dequantized weights are multiplied in (the packed CPU kernel: bf16)",
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
        """Replace every (non-kept) ``nn.Linear`` that fits here by a quantized ``Linear4bit``.

        Layers that bitsandbytes' packed CPU kernel cannot take (:func:`fits_4bit`) stay
        float32, and a note on the model says how many.

        Raises:
            VariantError: no layer fits (the message says which blocksize would do).
        """
        targets = linear_targets(model, ctx, keep_classifier=bool(params["keep_classifier"]))
        blocksize = int(params["blocksize"])
        fits = {n: fits_4bit(lin, blocksize=blocksize, device=ctx.device) for n, lin in targets}
        fitting = [(name, lin) for name, lin in targets if fits[name]]
        left = [(name, lin) for name, lin in targets if not fits[name]]
        if not fitting:
            raise VariantError(_nothing_fits(targets, blocksize))
        dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[str(params["compute_dtype"])]
        for name, lin in fitting:
            replace_module(
                model,
                name,
                four_bit_layer(
                    lin,
                    quant_type=str(params["quant_type"]),
                    compute_dtype=dtype,
                    blocksize=blocksize,
                    device=ctx.device,
                ),
            )
        if left:
            note = (
                f"bnb_4bit: {len(left)} of {len(targets)} linear layers kept in float32 (the "
                f"packed AVX512-BF16 CPU kernel needs out_features % {PACKED_BLOCK_N} == 0 and "
                f"in_features % blocksize {blocksize} == 0): {_shapes(left)}"
            )
            log.info("%s", note)
            add_note(model, note)
        return model


def _shapes(layers: list[tuple[str, nn.Linear]], *, most: int = 4) -> str:
    """E.g. ``encoder.0.query (32->16), pooler (32->32) and 3 more``."""
    parts = [f"{name} ({lin.in_features}->{lin.out_features})" for name, lin in layers[:most]]
    more = f" and {len(layers) - most} more" if len(layers) > most else ""
    return ", ".join(parts) + more


def _nothing_fits(targets: list[tuple[str, nn.Linear]], blocksize: int) -> str:
    """Why no layer can be 4-bit here, and what to change."""
    offered = Bnb4bit.params["blocksize"].choices
    better = {
        b: n
        for b in offered
        if b != blocksize and (n := sum(fits_4bit(lin, blocksize=b) for _, lin in targets))
    }
    if better:
        best = max(better, key=lambda b: (better[b], b))
        fix = f"use blocksize {best} (it fits {better[best]} of them), or another quantize method"
    else:
        fix = "use another quantize method (bnb_int8, dynamic_int8, torchao_int8_weight_only)"
    return (
        f"bnb_4bit would quantize none of the {len(targets)} linear layers here: this CPU has "
        f"AVX512-BF16, so bitsandbytes packs 4-bit weights for its fused CPU kernel, which "
        f"needs out_features % {PACKED_BLOCK_N} == 0 and in_features % blocksize {blocksize} "
        f"== 0, and none fits ({_shapes(targets)}): {fix}"
    )
