"""bitsandbytes 4-bit on both of its CPU paths, forced by patching bitsandbytes' own CPU check.

bitsandbytes 0.50 decides per ``Linear4bit`` whether to repack the weights for its fused
AVX512-BF16 CPU kernel: ``Linear4bit.__init__`` stores ``has_avx512bf16()``, imported into
``bitsandbytes.nn.modules``. Patching that name there forces the packed or the unpacked path
on any CPU. The packed kernel itself is registered at import only where the native library
reports AVX512-BF16 (``bitsandbytes.functional.has_avx512bf16``, left unpatched); elsewhere the
tests check the per-layer decision and the note, and skip only running the packed kernel.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

import pytest
import torch
from torch import nn

from compresslab.compress import CompressContext, Step, VariantSpec, build_variant, notes_of
from compresslab.compress.bnb import PACKED_BLOCK_N, bitsandbytes, fits_4bit, packs_for_cpu
from compresslab.compress.profile import profile_model
from compresslab.errors import VariantError

#: Layers of :func:`_mixed` by name: those the packed kernel takes at blocksize 64 ...
FITS = {"0", "8"}
#: ... and those it cannot: out 48 (not a multiple of 32), in 48 (< 64), in 96 (>= 64 but not
#: a multiple of 64).
ODD = {"2", "4", "6"}
CLASSIFIER = "10"
SPEC = VariantSpec((Step("bnb_4bit", {"quant_type": "nf4", "blocksize": 64}),))


def _mixed() -> tuple[nn.Module, CompressContext, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(128, 64),
        nn.ReLU(),
        nn.Linear(64, 48),
        nn.ReLU(),
        nn.Linear(48, 96),
        nn.ReLU(),
        nn.Linear(96, 64),
        nn.ReLU(),
        nn.Linear(64, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    ).eval()
    x = torch.randn(16, 128, generator=torch.Generator().manual_seed(1))
    return model, CompressContext(example_inputs=x[:2]), x


def _four_bit(model: nn.Module) -> dict[str, Any]:
    bnb = bitsandbytes()
    return {n: m for n, m in model.named_modules() if isinstance(m, bnb.nn.Linear4bit)}


def _float_linears(model: nn.Module) -> set[str]:
    return {n for n, m in model.named_modules() if type(m) is nn.Linear}


def _is_packed(layer: nn.Module) -> bool:
    return bool(getattr(layer.weight.quant_state, "packing_format_for_cpu", False))


def _close(out: torch.Tensor, ref: torch.Tensor) -> bool:
    return float((out - ref).abs().max()) < 0.15 * float(ref.abs().max())


def _require_packed_kernel() -> None:
    """Skip (after the checks above it) where bitsandbytes has no packed kernel to run."""
    if not bitsandbytes().functional.has_avx512bf16():
        pytest.skip(
            "this CPU lacks AVX512-BF16, so bitsandbytes registered no packed 4-bit CPU kernel: "
            "the per-layer decision was checked, running the packed kernel is not possible here"
        )


@pytest.fixture
def packed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every Linear4bit built in the test takes the packed CPU path (as on AVX512-BF16)."""
    monkeypatch.setattr(bitsandbytes().nn.modules, "has_avx512bf16", lambda: True)


@pytest.fixture
def unpacked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every Linear4bit built in the test takes the unpacked path (as without AVX512-BF16)."""
    monkeypatch.setattr(bitsandbytes().nn.modules, "has_avx512bf16", lambda: False)


def test_the_patch_moves_our_rule_and_bitsandbytes_together(packed) -> None:  # type: ignore[no-untyped-def]
    bnb = bitsandbytes()
    assert packs_for_cpu(torch.device("cpu"))
    assert bnb.nn.Linear4bit(64, 32).support_avx512bf16_for_cpu  # what forward() reads
    assert not packs_for_cpu(torch.device("meta"))  # only inputs on the CPU are packed


def test_packed_path_keeps_odd_layers_in_float_and_says_so(packed) -> None:  # type: ignore[no-untyped-def]
    model, ctx, x = _mixed()
    q = build_variant(model, SPEC, ctx)
    four_bit = _four_bit(q)
    assert set(four_bit) == FITS
    assert _float_linears(q) == ODD | {CLASSIFIER}
    assert all(m.support_avx512bf16_for_cpu for m in four_bit.values())
    (note,) = notes_of(q)
    assert note.startswith("bnb_4bit: 3 of 5 linear layers kept in float32")
    assert f"out_features % {PACKED_BLOCK_N} == 0" in note
    assert "in_features % blocksize 64 == 0" in note
    assert "2 (64->48), 4 (48->96), 6 (96->64)" in note
    assert notes_of(model) == []  # the base model is untouched

    _require_packed_kernel()
    with torch.inference_mode():
        ref, out = model(x), q(x)
    assert all(_is_packed(m) for m in four_bit.values())  # the packed kernel really ran
    assert out.shape == ref.shape and out.dtype == torch.float32
    assert _close(out, ref)


def test_unpacked_path_quantizes_every_layer(unpacked) -> None:  # type: ignore[no-untyped-def]
    model, ctx, x = _mixed()
    q = build_variant(model, SPEC, ctx)
    four_bit = _four_bit(q)
    assert set(four_bit) == FITS | ODD
    assert _float_linears(q) == {CLASSIFIER}
    assert notes_of(q) == []
    with torch.inference_mode():
        ref, out = model(x), q(x)
    assert not any(_is_packed(m) for m in four_bit.values())
    assert _close(out, ref)


def test_a_smaller_blocksize_fits_more_layers(packed) -> None:  # type: ignore[no-untyped-def]
    model, ctx, _ = _mixed()
    spec = VariantSpec((Step("bnb_4bit", {"blocksize": 32}),))
    q = build_variant(model, spec, ctx)
    assert set(_four_bit(q)) == FITS | {"6"}  # 96 inputs are three blocks of 32
    assert notes_of(q)[0].startswith("bnb_4bit: 2 of 5 linear layers kept in float32")


def test_no_fitting_layer_is_an_error_that_says_what_to_change(packed) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    x = torch.randn(2, 96)
    model = nn.Sequential(nn.Linear(96, 64), nn.ReLU(), nn.Linear(64, 10)).eval()
    with pytest.raises(VariantError, match=r"none of the 1 linear layers.*use blocksize 32"):
        build_variant(model, SPEC, CompressContext(example_inputs=x))
    model = nn.Sequential(nn.Linear(96, 48), nn.ReLU(), nn.Linear(48, 10)).eval()
    with pytest.raises(VariantError, match=r"out_features % 32 == 0.*another quantize method"):
        build_variant(model, SPEC, CompressContext(example_inputs=x))


def _linear4bit(lin: nn.Linear, blocksize: int) -> nn.Module:
    """A Linear4bit built with bitsandbytes alone (no compresslab code), quantized on the CPU."""
    bnb = bitsandbytes()
    q = bnb.nn.Linear4bit(
        lin.in_features, lin.out_features, compute_dtype=torch.float32, quant_type="nf4"
    )
    q.weight = bnb.nn.Params4bit(
        lin.weight.detach().clone(), requires_grad=False, blocksize=blocksize, module=q
    )
    q.bias = nn.Parameter(lin.bias.detach().clone(), requires_grad=False)
    return q.to("cpu").eval()


SHAPES = [(64, 32), (64, 48), (48, 32), (96, 64), (128, 96), (256, 64), (320, 33)]


@pytest.mark.parametrize(("shape", "blocksize"), list(itertools.product(SHAPES, (32, 64, 128))))
def test_fits_4bit_is_exactly_where_the_packed_kernel_runs(  # type: ignore[no-untyped-def]
    packed, shape, blocksize
) -> None:
    n_in, n_out = shape
    torch.manual_seed(0)
    lin = nn.Linear(n_in, n_out)
    fits = fits_4bit(lin, blocksize=blocksize)
    assert fits == (n_out % 32 == 0 and n_in % blocksize == 0)
    _require_packed_kernel()
    x = torch.randn(3, n_in)
    try:
        with torch.inference_mode():
            out = _linear4bit(lin, blocksize)(x)
        unpacked = _linear4bit(lin, blocksize)
        unpacked.support_avx512bf16_for_cpu = False
        with torch.inference_mode():
            ref = unpacked(x)
        runs = _close(out, ref)
    except (AssertionError, RuntimeError):  # what bitsandbytes raises on shapes it cannot pack
        runs = False
    assert runs == fits


def test_state_dict_leaves_a_packed_layer_as_it_was(packed) -> None:  # type: ignore[no-untyped-def]
    model, ctx, x = _mixed()
    q = build_variant(model, SPEC, ctx)
    _require_packed_kernel()
    with torch.inference_mode():
        first = q(x)
    assert all(_is_packed(m) for m in _four_bit(q).values())
    profile_model(q, ctx.example_inputs)  # reads the state dict (its serialized size)
    state = q.state_dict()
    assert state["0.weight.absmax"].shape == (64 * 128 // 64,)  # bitsandbytes' flat order
    with torch.inference_mode():
        assert torch.equal(q(x), first)


def test_llm_int8s_per_call_cast_line_is_dropped_and_other_lines_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """On a GPU, LLM.int8() logs its float16 cast on every call (thousands per window)."""
    from compresslab.compress.bnb import INT8_CAST_LOG

    bitsandbytes()
    bitsandbytes()  # the filter is installed once
    logger = logging.getLogger(INT8_CAST_LOG[0])
    assert len(logger.filters) == len({type(f) for f in logger.filters})
    with caplog.at_level(logging.WARNING, logger=INT8_CAST_LOG[0]):
        logger.warning("MatMul8bitLt: inputs will be cast from %s to float16", torch.float32)
        logger.warning("something else from bitsandbytes")
    assert [r.getMessage() for r in caplog.records] == ["something else from bitsandbytes"]
