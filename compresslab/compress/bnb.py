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

import functools
import logging
import warnings
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from compresslab.availability import Availability
from compresslab.compress.base import CompressContext, CompressionMethod, ParamDef, add_note
from compresslab.compress.layers import linear_targets
from compresslab.errors import VariantError

log = logging.getLogger(__name__)

_INSTALL = "pip install 'bitsandbytes>=0.45'"

#: The packed CPU layout groups output features in blocks of this many (bitsandbytes'
#: ``block_n`` in ``functional._convert_weight_packed_for_cpu``).
PACKED_BLOCK_N = 32

#: The probe's layer, (in_features, out_features): in_features is a multiple of every offered
#: blocksize and out_features of :data:`PACKED_BLOCK_N`, as in real models (768, 3072, ...).
PROBE_SHAPE = (256, 64)


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


def target_device(lin: nn.Linear, ctx_device: str = "cpu") -> torch.device:
    """Where a replacement layer quantizes: the variant's device, else where ``lin`` is."""
    return torch.device(ctx_device) if ctx_device != "cpu" else lin.weight.device


def _int8_layer(lin: nn.Linear, *, threshold: float, device: str = "cpu") -> nn.Module:
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
    q = q.to(target_device(lin, device))  # quantizes the weights (row-wise int8 and scales)
    if q.weight.dtype != torch.int8:
        raise VariantError(
            f"bitsandbytes did not quantize the weights to int8 (got {q.weight.dtype}): "
            f"upgrade bitsandbytes ({_INSTALL})"
        )
    q.eval()
    return q


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


def _unpack_before_state_dict(module: nn.Module, prefix: str, keep_vars: bool) -> None:
    """Undo the packed CPU layout before ``state_dict`` reads a ``Linear4bit``.

    bitsandbytes 0.50 undoes it itself (``Linear4bit._save_to_state_dict``), but its inverse
    restores the block scales only for ``compress_statistics=True``: ours stay bf16 in the
    packed ``[in/blocksize, out]`` order, and the next forward repacks them scrambled, so the
    layer's outputs change after every ``state_dict()`` (a profile's size, an export's
    fingerprint). Unpacking here, with the scales put back in bitsandbytes' flat
    ``[out * in/blocksize]`` float32 order, leaves nothing for bitsandbytes to undo; the next
    inference call repacks to exactly the same weights and scales.
    """
    weight: Any = module.weight
    state = getattr(weight, "quant_state", None)
    if state is None or not getattr(state, "packing_format_for_cpu", False):
        return
    inverse = bitsandbytes().functional._convert_weight_packed_for_cpu_inverse
    weight.data, state = inverse(weight.data, state)
    if not state.nested and state.absmax.dim() == 2:
        state.absmax = state.absmax.T.reshape(-1).float()
    weight.quant_state = state


def _4bit_layer(
    lin: nn.Linear,
    *,
    quant_type: str,
    compute_dtype: torch.dtype,
    blocksize: int,
    device: str = "cpu",
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
    q = q.to(target_device(lin, device))  # quantizes the weights (4-bit and block scales)
    if not getattr(q.weight, "bnb_quantized", False):
        raise VariantError(
            f"bitsandbytes did not quantize the weights to 4 bits: upgrade it ({_INSTALL})"
        )
    q.register_state_dict_pre_hook(_unpack_before_state_dict)
    q.eval()
    return q


def _probe(make: Any) -> Availability:
    """Run a linear layer of :data:`PROBE_SHAPE` through the real kernel; compare with float32.

    A realistic shape: bitsandbytes' packed 4-bit CPU path refuses small odd ones that real
    models do not have (those layers stay float32, see :func:`fits_4bit`).
    """
    try:
        bnb = bitsandbytes()
    except ImportError as e:
        return Availability(False, f"bitsandbytes is not installed ({e}): {_INSTALL}")
    try:
        gen = torch.Generator().manual_seed(0)
        n_in, n_out = PROBE_SHAPE
        lin = nn.Linear(n_in, n_out)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(n_out, n_in, generator=gen) * 0.1)
        x = torch.randn(4, n_in, generator=gen)
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
    path = ""
    if getattr(getattr(q.weight, "quant_state", None), "packing_format_for_cpu", False):
        path = (
            f" with the packed AVX512-BF16 CPU kernel (layers need out_features % "
            f"{PACKED_BLOCK_N} == 0 and in_features % blocksize == 0; others stay float32)"
        )
    return Availability(
        True, f"bitsandbytes {bnb.__version__} ran a {make.label} {n_in}x{n_out} layer here{path}"
    )


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
            layer = _int8_layer(lin, threshold=float(params["threshold"]), device=ctx.device)
            replace_module(model, name, layer)
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
                _4bit_layer(
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
