"""bitsandbytes' layers built from float ``nn.Linear`` layers, and probes of its kernels here.

bitsandbytes is imported on first use (:func:`bitsandbytes`). A replacement layer is built
from the float weights and moved to the device the variant runs on, which quantizes it there
(see :mod:`.bnb`).
"""

from __future__ import annotations

import functools
import logging
import warnings
from typing import Any

import torch
from torch import nn

from compresslab.availability import Availability
from compresslab.errors import VariantError

_INSTALL = "pip install 'bitsandbytes>=0.45'"

#: The packed CPU layout groups output features in blocks of this many (bitsandbytes'
#: ``block_n`` in ``functional._convert_weight_packed_for_cpu``).
PACKED_BLOCK_N = 32

#: The probe's layer, (in_features, out_features): in_features is a multiple of every offered
#: blocksize and out_features of :data:`PACKED_BLOCK_N`, as in real models (768, 3072, ...).
PROBE_SHAPE = (256, 64)


#: LLM.int8()'s log line on every call with float32 inputs (bitsandbytes 0.50,
#: ``autograd/_functions.py``): thousands per measurement window. The cast is documented
#: behaviour and part of what ``bnb_int8`` measures; it is said once, as a variant note.
INT8_CAST_LOG = ("bitsandbytes.autograd._functions", "inputs will be cast from")


class _DropInt8Cast(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return INT8_CAST_LOG[1] not in record.getMessage()


def bitsandbytes() -> Any:
    """The ``bitsandbytes`` module, imported on first use without its import-time warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import bitsandbytes as bnb

    logger = logging.getLogger(INT8_CAST_LOG[0])
    if not any(isinstance(f, _DropInt8Cast) for f in logger.filters):
        logger.addFilter(_DropInt8Cast())
    return bnb


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    """Put ``new`` where the submodule ``name`` is."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def target_device(lin: nn.Linear, ctx_device: str = "cpu") -> torch.device:
    """Where a replacement layer quantizes: the variant's device, else where ``lin`` is."""
    return torch.device(ctx_device) if ctx_device != "cpu" else lin.weight.device


def int8_layer(lin: nn.Linear, *, threshold: float, device: str = "cpu") -> nn.Module:
    """A ``Linear8bitLt`` with ``lin``'s weights, quantized on the variant's ``device``."""
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


def four_bit_layer(
    lin: nn.Linear,
    *,
    quant_type: str,
    compute_dtype: torch.dtype,
    blocksize: int,
    device: str = "cpu",
) -> nn.Module:
    """A ``Linear4bit`` with ``lin``'s weights, quantized on the variant's ``device``."""
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
    models do not have (those layers stay float32, see :func:`.bnb.fits_4bit`).
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
    return _probe(_labelled("Linear8bitLt", lambda lin: int8_layer(lin, threshold=6.0)))


@functools.cache
def probe_4bit() -> Availability:
    """Whether ``Linear4bit`` (nf4) quantizes and runs here (cached for the process)."""
    return _probe(
        _labelled(
            "Linear4bit nf4",
            lambda lin: four_bit_layer(
                lin, quant_type="nf4", compute_dtype=torch.float32, blocksize=64
            ),
        )
    )
