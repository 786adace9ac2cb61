"""bitsandbytes and torchao quantization on the real digits CNN and a tiny BERT; probes."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

from compresslab.compress import (
    METHODS,
    Step,
    VariantSpec,
    build_variant,
    notes_of,
    probe_methods,
)
from compresslab.compress import ao as ao_module
from compresslab.compress.bnb import bitsandbytes
from compresslab.compress.profile import profile_model
from compresslab.recipe import MethodSpec
from compresslab.study import SearchSpace
from compresslab.tasks.metrics import evaluate


def _build(task, ctx, method: str, params: dict | None = None) -> nn.Module:  # type: ignore[no-untyped-def, type-arg]
    return build_variant(task.model, VariantSpec((Step(method, params or {}),)), ctx)


@pytest.mark.slow
def test_bnb_int8_keeps_accuracy_and_stores_int8(digits_task, digits_ctx) -> None:  # type: ignore[no-untyped-def]
    bnb = bitsandbytes()
    base = profile_model(digits_task.model, digits_ctx.example_inputs)
    q = _build(digits_task, digits_ctx, "bnb_int8")
    hidden, classifier = q.classifier[1], q.classifier[3]
    assert isinstance(hidden, bnb.nn.Linear8bitLt)
    assert hidden.weight.dtype == torch.int8
    assert hidden.state.threshold == 6.0
    assert type(classifier) is nn.Linear  # kept in float32 by default
    out = q(digits_task.eval_inputs[:6])
    assert out.shape == (6, 10) and out.dtype == torch.float32
    acc = evaluate(q, digits_task.eval_inputs, digits_task.eval_labels)
    base_acc = evaluate(digits_task.model, digits_task.eval_inputs, digits_task.eval_labels)
    assert acc >= base_acc - 0.02
    prof = profile_model(q, digits_ctx.example_inputs)
    assert prof.macs_per_inference == base.macs_per_inference
    # The 1024x128 hidden layer dominates: 4 bytes -> 1 byte per weight (plus row scales).
    assert prof.memory_bytes < base.memory_bytes * 0.4
    assert prof.size_bytes < base.size_bytes * 0.4


@pytest.mark.slow
def test_bnb_int8_can_quantize_the_classifier_and_drop_outliers(digits_task, digits_ctx) -> None:  # type: ignore[no-untyped-def]
    bnb = bitsandbytes()
    q = _build(digits_task, digits_ctx, "bnb_int8", {"keep_classifier": False, "threshold": 0.0})
    assert isinstance(q.classifier[3], bnb.nn.Linear8bitLt)
    assert q.classifier[3].state.threshold == 0.0
    assert evaluate(q, digits_task.eval_inputs, digits_task.eval_labels) > 0.95


@pytest.mark.slow
@pytest.mark.parametrize(("quant_type", "compute_dtype"), [("nf4", "float32"), ("fp4", "bfloat16")])
def test_bnb_4bit_sets_the_quant_type_explicitly(  # type: ignore[no-untyped-def]
    digits_task, digits_ctx, quant_type, compute_dtype
) -> None:
    bnb = bitsandbytes()
    base = profile_model(digits_task.model, digits_ctx.example_inputs)
    params = {"quant_type": quant_type, "compute_dtype": compute_dtype, "blocksize": 64}
    q = _build(digits_task, digits_ctx, "bnb_4bit", params)
    hidden = q.classifier[1]
    assert isinstance(hidden, bnb.nn.Linear4bit)
    assert hidden.weight.quant_type == quant_type
    assert hidden.weight.quant_state.blocksize == 64
    assert hidden.compute_dtype == getattr(torch, compute_dtype)
    assert hidden.weight.dtype == torch.uint8 and hidden.weight.numel() == 1024 * 128 // 2
    out = q(digits_task.eval_inputs[:6])
    assert out.shape == (6, 10) and out.dtype == torch.float32
    assert evaluate(q, digits_task.eval_inputs, digits_task.eval_labels) > 0.95
    prof = profile_model(q, digits_ctx.example_inputs)
    assert prof.memory_bytes < base.memory_bytes * 0.3  # 4 bits + one scale per 64 weights


@pytest.mark.slow
@pytest.mark.parametrize("method", ["torchao_int8_weight_only", "torchao_int8_dynamic"])
def test_torchao_int8(digits_task, digits_ctx, method) -> None:  # type: ignore[no-untyped-def]
    base = profile_model(digits_task.model, digits_ctx.example_inputs)
    q = _build(digits_task, digits_ctx, method)
    weight = q.classifier[1].weight
    assert type(weight) is not nn.Parameter and type(weight) is not torch.Tensor  # a subclass
    assert weight.qdata.dtype == torch.int8
    assert type(q.classifier[3].weight) is nn.Parameter  # the classifier stays float32
    assert q(digits_task.eval_inputs[:6]).shape == (6, 10)
    assert evaluate(q, digits_task.eval_inputs, digits_task.eval_labels) > 0.95
    prof = profile_model(q, digits_ctx.example_inputs)
    assert prof.memory_bytes < base.memory_bytes * 0.4


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("bnb_int8", {}),
        # The tiny encoder's layers are 32 and 64 wide: blocksize 32 fits both 4-bit CPU paths
        # (the packed one needs in_features % blocksize == 0; see test_bnb.py).
        ("bnb_4bit", {"quant_type": "nf4", "blocksize": 32}),
        ("torchao_int8_dynamic", {}),
        ("dynamic_int8", {}),
    ],
)
def test_quantizers_run_a_transformer(tiny_bert, method, params) -> None:  # type: ignore[no-untyped-def]
    q = build_variant(tiny_bert.model, VariantSpec((Step(method, params),)), tiny_bert.ctx)
    with torch.inference_mode():
        ref, out = tiny_bert.model(tiny_bert.inputs), q(tiny_bert.inputs)
    assert out.shape == ref.shape == (48, 3)
    # A random encoder's logits are small; quantized ones stay close to them.
    assert float((out - ref).abs().max()) < 0.1 * float(ref.abs().max()) + 0.05
    # Every linear layer of the encoder holds quantized weights (torchao keeps nn.Linear and
    # swaps its weight for a tensor subclass; the others replace the module).
    float_linears = [
        m for m in q.encoder.modules() if type(m) is nn.Linear and type(m.weight) is nn.Parameter
    ]
    assert not float_linears
    assert notes_of(q) == []  # nothing was left out


def test_an_unavailable_method_says_why_and_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    # torchao not installed: importing it fails, as it would without the extra.
    for name in [n for n in sys.modules if n == "torchao" or n.startswith("torchao.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "torchao", None)
    ao_module.probe.cache_clear()
    try:
        avail = probe_methods(["torchao_int8_dynamic", "bnb_int8"])
        assert not avail["torchao_int8_dynamic"]
        assert "pip install 'compresslab[torchao]'" in avail["torchao_int8_dynamic"].reason
        assert avail["bnb_int8"]
        space = SearchSpace.from_recipe(
            [MethodSpec(method="torchao_int8_dynamic"), MethodSpec(method="bnb_int8")]
        )
        assert "torchao_int8_dynamic" in space.skipped
        assert "compresslab[torchao]" in space.skipped["torchao_int8_dynamic"]
        assert [m.method for m in space.by_stage["quantize"]] == ["bnb_int8"]
    finally:
        ao_module.probe.cache_clear()


def test_every_probe_is_real_and_cached() -> None:
    avail = probe_methods(METHODS)
    assert "ran" in avail["bnb_4bit"].reason and "Linear4bit" in avail["bnb_4bit"].reason
    assert "torchao" in avail["torchao_int8_weight_only"].reason
    assert probe_methods(["bnb_int8"])["bnb_int8"] is avail["bnb_int8"]  # probed once
