from __future__ import annotations

import pytest
import torch
from torch import nn

from compresslab.compress import (
    METHODS,
    CompressContext,
    Step,
    VariantSpec,
    build_variant,
    probe_methods,
)
from compresslab.compress.precision import CastWrapper
from compresslab.compress.profile import profile_model
from compresslab.errors import VariantError
from compresslab.tasks.metrics import evaluate


@pytest.fixture(scope="module")
def ctx(digits_task):  # type: ignore[no-untyped-def]
    return CompressContext(
        example_inputs=digits_task.example_inputs(),
        train_inputs=digits_task.train_inputs,
        train_labels=digits_task.train_labels,
    )


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_every_method_runs_on_this_cpu() -> None:
    avail = probe_methods(METHODS)
    assert set(avail) == {
        "prune_channels",
        "prune_heads",
        "prune_llm",
        "sparsity",
        "dynamic_int8",
        "bnb_int8",
        "bnb_4bit",
        "torchao_int8_weight_only",
        "torchao_int8_dynamic",
        "bf16",
        "fp16",
    }
    for name, a in avail.items():
        assert a.available, f"{name}: {a.reason}"
        assert a.reason


@pytest.mark.slow
def test_baseline_accuracy_is_real(digits_task) -> None:  # type: ignore[no-untyped-def]
    acc = evaluate(digits_task.model, digits_task.eval_inputs, digits_task.eval_labels)
    assert acc > 0.95


@pytest.mark.slow
@pytest.mark.parametrize("ratio", [0.25, 0.5])
def test_pruning_removes_channels_and_macs(digits_task, ctx, ratio) -> None:  # type: ignore[no-untyped-def]
    base_state = _state(digits_task.model)
    base = profile_model(digits_task.model, ctx.example_inputs)
    spec = VariantSpec((Step("prune_channels", {"ratio": ratio, "importance": "l1"}),))
    pruned = build_variant(digits_task.model, spec, ctx)
    prof = profile_model(pruned, ctx.example_inputs)
    # Channel pruning at ratio p shrinks conv-conv MACs by about (1 - p)^2.
    assert prof.macs_per_inference < base.macs_per_inference * (1 - ratio) ** 2 * 1.2
    assert prof.params < base.params
    out = pruned(digits_task.eval_inputs[:7])
    assert out.shape == (7, 10)  # the classifier keeps every class
    assert not torch.allclose(out, digits_task.model(digits_task.eval_inputs[:7]))  # a new model
    x, y = digits_task.eval_inputs, digits_task.eval_labels
    # Without recovery, L1 pruning of this CNN costs about 0.07 accuracy at either ratio
    # (0.99 -> 0.93); chance is 0.10, so a broken pruning cannot stay within 0.15.
    assert evaluate(pruned, x, y) > evaluate(digits_task.model, x, y) - 0.15
    # The base model is untouched.
    for k, v in digits_task.model.state_dict().items():
        assert torch.equal(v, base_state[k]), k


@pytest.mark.slow
def test_pruning_round_to_gives_kernel_friendly_widths(digits_task, ctx) -> None:  # type: ignore[no-untyped-def]
    spec = VariantSpec((Step("prune_channels", {"ratio": 0.3, "round_to": 8}),))
    pruned = build_variant(digits_task.model, spec, ctx)
    convs = [m for m in pruned.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.out_channels % 8 == 0 for c in convs), [c.out_channels for c in convs]


@pytest.mark.slow
def test_recovery_fine_tuning_recovers_accuracy(digits_task, ctx) -> None:  # type: ignore[no-untyped-def]
    raw = build_variant(
        digits_task.model, VariantSpec((Step("prune_channels", {"ratio": 0.7}),)), ctx
    )
    tuned = build_variant(
        digits_task.model,
        VariantSpec((Step("prune_channels", {"ratio": 0.7, "recovery_epochs": 3}),)),
        ctx,
    )
    x, y = digits_task.eval_inputs, digits_task.eval_labels
    assert evaluate(tuned, x, y) > evaluate(raw, x, y)


@pytest.mark.slow
def test_recovery_without_training_data_is_a_clear_error(digits_task) -> None:  # type: ignore[no-untyped-def]
    ctx = CompressContext(example_inputs=digits_task.example_inputs())
    spec = VariantSpec((Step("prune_channels", {"ratio": 0.3, "recovery_epochs": 1}),))
    with pytest.raises(VariantError, match="needs training data"):
        build_variant(digits_task.model, spec, ctx)


@pytest.mark.slow
def test_dynamic_int8_quantizes_linear_layers(digits_task, ctx) -> None:  # type: ignore[no-untyped-def]
    base = profile_model(digits_task.model, ctx.example_inputs)
    q = build_variant(digits_task.model, VariantSpec((Step("dynamic_int8"),)), ctx)
    prof = profile_model(q, ctx.example_inputs)
    assert not any(isinstance(m, nn.Linear) for m in q.modules())
    assert prof.macs_per_inference == base.macs_per_inference  # same work, fewer bits
    assert prof.size_bytes < base.size_bytes * 0.5  # the linear weights dominate
    assert any(isinstance(m, nn.Linear) for m in digits_task.model.modules())
    assert evaluate(q, digits_task.eval_inputs, digits_task.eval_labels) > 0.9


@pytest.mark.slow
def test_dynamic_int8_without_linear_layers_fails_clearly(ctx) -> None:  # type: ignore[no-untyped-def]
    conv_only = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten())
    with pytest.raises(VariantError, match="no nn.Linear"):
        build_variant(conv_only, VariantSpec((Step("dynamic_int8"),)), ctx)


@pytest.mark.slow
@pytest.mark.parametrize(("method", "dtype"), [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_precision_casts(digits_task, ctx, method, dtype) -> None:  # type: ignore[no-untyped-def]
    base = profile_model(digits_task.model, ctx.example_inputs)
    m = build_variant(digits_task.model, VariantSpec((Step(method),)), ctx)
    assert isinstance(m, CastWrapper)
    assert all(p.dtype == dtype for p in m.parameters())
    out = m(digits_task.eval_inputs[:3])
    assert out.dtype == torch.float32 and out.shape == (3, 10)
    assert profile_model(m, ctx.example_inputs).size_bytes < base.size_bytes * 0.6
    assert all(p.dtype == torch.float32 for p in digits_task.model.parameters())
    assert evaluate(m, digits_task.eval_inputs, digits_task.eval_labels) > 0.95


@pytest.mark.slow
def test_prune_then_quantize_composes(digits_task, ctx) -> None:  # type: ignore[no-untyped-def]
    spec = VariantSpec((Step("prune_channels", {"ratio": 0.5}), Step("dynamic_int8")))
    m = build_variant(digits_task.model, spec, ctx)
    base = profile_model(digits_task.model, ctx.example_inputs)
    prof = profile_model(m, ctx.example_inputs)
    assert prof.macs_per_inference < base.macs_per_inference / 2
    assert prof.size_bytes < base.size_bytes / 4
    assert spec.label() == "prune_channels(ratio=0.5) + dynamic_int8"


@pytest.mark.slow
def test_steps_out_of_stage_order_are_refused(digits_task, ctx) -> None:  # type: ignore[no-untyped-def]
    spec = VariantSpec((Step("dynamic_int8"), Step("prune_channels", {"ratio": 0.5})))
    with pytest.raises(VariantError, match="prune -> sparsify -> quantize"):
        build_variant(digits_task.model, spec, ctx)


@pytest.mark.slow
def test_keep_layers_must_name_real_modules(digits_task) -> None:  # type: ignore[no-untyped-def]
    ctx = CompressContext(example_inputs=digits_task.example_inputs(), keep_modules=("nope",))
    with pytest.raises(VariantError, match="not a module"):
        build_variant(
            digits_task.model, VariantSpec((Step("prune_channels", {"ratio": 0.3}),)), ctx
        )


@pytest.mark.slow
def test_keep_layers_are_not_pruned(digits_task) -> None:  # type: ignore[no-untyped-def]
    ctx = CompressContext(example_inputs=digits_task.example_inputs(), keep_modules=("features.0",))
    m = build_variant(
        digits_task.model, VariantSpec((Step("prune_channels", {"ratio": 0.5}),)), ctx
    )
    assert m.features[0].out_channels == digits_task.model.features[0].out_channels
    assert m.features[3].out_channels < digits_task.model.features[3].out_channels
