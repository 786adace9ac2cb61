"""Channel pruning in depth: importance criteria, iterative steps, distillation, transformers."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from compresslab.compress import (
    BuildTrace,
    CompressContext,
    Step,
    VariantSpec,
    build_variant,
)
from compresslab.compress.profile import profile_model
from compresslab.errors import VariantError
from compresslab.tasks.metrics import evaluate


def _convs(model: nn.Module) -> list[int]:
    return [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)]


@pytest.mark.slow
@pytest.mark.parametrize("importance", ["taylor", "lamp", "fpgm", "random"])
def test_every_importance_prunes_the_configured_share(digits_task, digits_ctx, importance) -> None:  # type: ignore[no-untyped-def]
    spec = VariantSpec((Step("prune_channels", {"ratio": 0.5, "importance": importance}),))
    pruned = build_variant(digits_task.model, spec, digits_ctx)
    assert _convs(pruned) == [16, 32]  # 32 and 64 channels, half removed
    base = profile_model(digits_task.model, digits_ctx.example_inputs)
    prof = profile_model(pruned, digits_ctx.example_inputs)
    assert prof.macs_per_inference < base.macs_per_inference * 0.3
    assert pruned(digits_task.eval_inputs[:5]).shape == (5, 10)
    # Half the channels gone without recovery: 0.73 (taylor) to 0.88 (fpgm) measured, from
    # 0.99; chance is 0.10, so a criterion that removed the wrong things would fall below.
    assert evaluate(pruned, digits_task.eval_inputs, digits_task.eval_labels) > 0.6


@pytest.mark.slow
def test_taylor_ranks_differently_from_magnitude(digits_task, digits_ctx) -> None:  # type: ignore[no-untyped-def]
    def kept(importance: str) -> torch.Tensor:
        trace = BuildTrace()
        spec = VariantSpec((Step("prune_channels", {"ratio": 0.5, "importance": importance}),))
        build_variant(digits_task.model, spec, digits_ctx, trace=trace)
        history = trace.steps[0].pruning_history
        assert history
        return torch.tensor(sorted(history[0][2]))

    assert not torch.equal(kept("taylor"), kept("l2"))


@pytest.mark.slow
def test_taylor_without_training_data_is_a_clear_error(digits_task) -> None:  # type: ignore[no-untyped-def]
    ctx = CompressContext(example_inputs=digits_task.example_inputs())
    spec = VariantSpec((Step("prune_channels", {"importance": "taylor"}),))
    with pytest.raises(VariantError, match="'taylor' needs training data.*pick l1"):
        build_variant(digits_task.model, spec, ctx)


@pytest.mark.slow
def test_iterative_steps_reach_the_same_widths_in_several_steps(digits_task, digits_ctx) -> None:  # type: ignore[no-untyped-def]
    trace = BuildTrace()
    spec = VariantSpec((Step("prune_channels", {"ratio": 0.5, "iterative_steps": 3}),))
    pruned = build_variant(digits_task.model, spec, digits_ctx, trace=trace)
    assert _convs(pruned) == [16, 32]
    history = trace.steps[0].pruning_history
    assert history is not None
    # One entry per pruned group per step: three steps record three times as many.
    one_shot = BuildTrace()
    build_variant(
        digits_task.model,
        VariantSpec((Step("prune_channels", {"ratio": 0.5}),)),
        digits_ctx,
        trace=one_shot,
    )
    assert one_shot.steps[0].pruning_history
    assert len(history) == 3 * len(one_shot.steps[0].pruning_history)


@pytest.mark.slow
def test_distillation_from_the_unpruned_model_changes_recovery(digits_task, digits_ctx) -> None:  # type: ignore[no-untyped-def]
    x, y = digits_task.eval_inputs, digits_task.eval_labels

    def build(distill: float) -> nn.Module:
        params = {"ratio": 0.75, "recovery_epochs": 1, "distill": distill}
        return build_variant(
            digits_task.model, VariantSpec((Step("prune_channels", params),)), digits_ctx
        )

    raw = build_variant(
        digits_task.model, VariantSpec((Step("prune_channels", {"ratio": 0.75}),)), digits_ctx
    )
    plain, distilled = build(0.0), build(0.9)
    assert not torch.equal(plain(x), distilled(x))  # the teacher's outputs were used
    assert evaluate(distilled, x, y) > evaluate(raw, x, y)
    # The teacher agrees with the base model more than the raw pruned one does.
    with torch.inference_mode():
        teacher_preds = digits_task.model(x).argmax(-1)
        agree_raw = (raw(x).argmax(-1) == teacher_preds).float().mean()
        agree_distilled = (distilled(x).argmax(-1) == teacher_preds).float().mean()
    assert agree_distilled > agree_raw


@pytest.mark.slow
def test_building_twice_gives_identical_weights_and_keeps_global_rng(
    digits_task, digits_ctx
) -> None:  # type: ignore[no-untyped-def]
    spec = VariantSpec(
        (Step("prune_channels", {"ratio": 0.5, "importance": "random", "recovery_epochs": 1}),)
    )
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = build_variant(digits_task.model, spec, digits_ctx)
    after = torch.rand(1)
    b = build_variant(digits_task.model, spec, digits_ctx)
    assert torch.equal(before, after)  # the global RNG was left as it was
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb), ka


def test_transformer_keeps_embeddings_and_heads_under_channel_pruning(tiny_bert) -> None:  # type: ignore[no-untyped-def]
    base = tiny_bert.model
    pruned = build_variant(
        base, VariantSpec((Step("prune_channels", {"ratio": 0.5}),)), tiny_bert.ctx
    )
    emb = pruned.encoder.embeddings
    assert emb.word_embeddings.embedding_dim == 32  # the residual width is shared: kept
    assert emb.position_embeddings.embedding_dim == 32
    for layer in pruned.encoder.encoder.layer:
        assert layer.attention.self.query.out_features == 32  # heads need prune_heads
        assert layer.attention.self.num_attention_heads == 4
        assert layer.intermediate.dense.out_features == 32  # FFN width halved
    assert pruned.classifier.out_features == 3
    assert pruned(tiny_bert.inputs).shape == (48, 3)
    before = profile_model(base, tiny_bert.ctx.example_inputs).macs_per_inference
    assert profile_model(pruned, tiny_bert.ctx.example_inputs).macs_per_inference < before


def test_pruning_never_mutates_the_base_model(tiny_bert) -> None:  # type: ignore[no-untyped-def]
    state = copy.deepcopy(tiny_bert.model.state_dict())
    build_variant(
        tiny_bert.model,
        VariantSpec((Step("prune_heads", {"head_ratio": 0.5, "recovery_epochs": 1}),)),
        tiny_bert.ctx,
    )
    for k, v in tiny_bert.model.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert tiny_bert.model.encoder.encoder.layer[0].attention.self.num_attention_heads == 4
