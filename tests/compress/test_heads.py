"""Attention-head and FFN pruning of a (tiny, random) BERT wrapped as the text tasks wrap it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from compresslab.compress import BuildTrace, CompressContext, Step, VariantSpec, build_variant
from compresslab.compress.profile import profile_model
from compresslab.errors import VariantError


def _layers(model: nn.Module) -> list[nn.Module]:
    return list(model.encoder.encoder.layer)


def _heads(model: nn.Module) -> list[int]:
    return [int(layer.attention.self.num_attention_heads) for layer in _layers(model)]


def test_heads_and_ffn_are_removed_and_attention_attributes_follow(tiny_bert) -> None:  # type: ignore[no-untyped-def]
    spec = VariantSpec((Step("prune_heads", {"head_ratio": 0.5, "ffn_ratio": 0.5}),))
    pruned = build_variant(tiny_bert.model, spec, tiny_bert.ctx)
    for layer in _layers(pruned):
        attn = layer.attention.self
        assert attn.num_attention_heads == 2
        assert attn.attention_head_size == 8  # whole heads go; their size stays
        assert attn.all_head_size == 16
        assert attn.query.out_features == attn.key.out_features == attn.value.out_features == 16
        assert layer.attention.output.dense.in_features == 16
        assert layer.intermediate.dense.out_features == 32
        assert layer.output.dense.in_features == 32
    assert pruned.encoder.embeddings.word_embeddings.embedding_dim == 32
    out = pruned(tiny_bert.inputs)
    assert out.shape == (48, 3) and torch.isfinite(out).all()
    base = profile_model(tiny_bert.model, tiny_bert.ctx.example_inputs)
    prof = profile_model(pruned, tiny_bert.ctx.example_inputs)
    # q/k/v/o and the FFN are the encoder's linear work: both halved.
    assert prof.macs_per_inference < base.macs_per_inference * 0.55
    assert prof.params < base.params


def test_heads_only_leaves_the_ffn_and_ffn_only_leaves_the_heads(tiny_bert) -> None:  # type: ignore[no-untyped-def]
    heads_only = build_variant(
        tiny_bert.model,
        VariantSpec((Step("prune_heads", {"head_ratio": 0.25, "ffn_ratio": 0.0}),)),
        tiny_bert.ctx,
    )
    assert _heads(heads_only) == [3, 3]
    assert all(layer.intermediate.dense.out_features == 64 for layer in _layers(heads_only))
    ffn_only = build_variant(
        tiny_bert.model,
        VariantSpec((Step("prune_heads", {"head_ratio": 0.0, "ffn_ratio": 0.75}),)),
        tiny_bert.ctx,
    )
    assert _heads(ffn_only) == [4, 4]
    assert all(layer.intermediate.dense.out_features == 16 for layer in _layers(ffn_only))


@pytest.mark.parametrize("global_pruning", [False, True])
def test_iterative_head_pruning_removes_the_one_shot_count(tiny_bert, global_pruning) -> None:  # type: ignore[no-untyped-def]
    # torch-pruning 1.6 alone compounds per-layer head ratios over steps (3 of 4 heads here).
    params = {
        "head_ratio": 0.5,
        "ffn_ratio": 0.5,
        "iterative_steps": 2,
        "global_pruning": global_pruning,
    }
    pruned = build_variant(
        tiny_bert.model, VariantSpec((Step("prune_heads", params),)), tiny_bert.ctx
    )
    assert sum(_heads(pruned)) == 4
    assert sum(layer.intermediate.dense.out_features for layer in _layers(pruned)) == 64
    assert pruned(tiny_bert.inputs).shape == (48, 3)


def test_taylor_recovery_and_distillation_run_on_text(tiny_bert) -> None:  # type: ignore[no-untyped-def]
    params = {
        "head_ratio": 0.25,
        "importance": "taylor",
        "recovery_epochs": 1,
        "distill": 0.5,
        "recovery_lr": 1e-3,
    }
    trace = BuildTrace()
    pruned = build_variant(
        tiny_bert.model, VariantSpec((Step("prune_heads", params),)), tiny_bert.ctx, trace=trace
    )
    assert _heads(pruned) == [3, 3]
    assert trace.steps[0].pruning_history
    unrecovered = build_variant(
        tiny_bert.model,
        VariantSpec((Step("prune_heads", {**params, "recovery_epochs": 0}),)),
        tiny_bert.ctx,
    )
    assert not torch.equal(pruned(tiny_bert.inputs), unrecovered(tiny_bert.inputs))


def test_removing_every_head_is_refused_with_the_limit(tiny_bert) -> None:  # type: ignore[no-untyped-def]
    spec = VariantSpec((Step("prune_heads", {"head_ratio": 0.8}),))
    with pytest.raises(VariantError, match="removes all 4 heads.*below 0.75"):
        build_variant(tiny_bert.model, spec, tiny_bert.ctx)


def test_keep_layers_protects_an_ffn(tiny_bert) -> None:  # type: ignore[no-untyped-def]
    ctx = CompressContext(
        example_inputs=tiny_bert.ctx.example_inputs,
        keep_modules=("encoder.encoder.layer.0.intermediate.dense",),
    )
    pruned = build_variant(
        tiny_bert.model, VariantSpec((Step("prune_heads", {"ffn_ratio": 0.5}),)), ctx
    )
    widths = [layer.intermediate.dense.out_features for layer in _layers(pruned)]
    assert widths == [64, 32]


@pytest.mark.slow
def test_a_model_without_attention_is_told_to_use_channel_pruning(digits_task, digits_ctx) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(VariantError, match="BERT-style encoder.*use prune_channels"):
        build_variant(digits_task.model, VariantSpec((Step("prune_heads"),)), digits_ctx)


def test_a_wider_model_keeps_whole_heads(bert_factory) -> None:  # type: ignore[no-untyped-def]
    bert = bert_factory(heads=8, seed=1)
    pruned = build_variant(
        bert.model,
        VariantSpec((Step("prune_heads", {"head_ratio": 0.3, "global_pruning": True}),)),
        bert.ctx,
    )
    heads = _heads(pruned)
    assert sum(heads) == int(16 * (1 - 0.3))  # ranked across both layers: the total counts
    for layer in _layers(pruned):
        attn = layer.attention.self
        assert attn.query.out_features == attn.num_attention_heads * attn.attention_head_size
    assert pruned(bert.inputs).shape == (48, 3)
