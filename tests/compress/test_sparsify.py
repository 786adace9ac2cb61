"""Unstructured magnitude sparsity: zeros in dense weights, the same MACs, a stage of its own."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from compresslab.compress import STAGES, Step, VariantSpec, build_variant
from compresslab.compress.profile import profile_model, weight_sparsity
from compresslab.errors import VariantError
from compresslab.tasks.metrics import evaluate


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {
        name: m.weight.detach()
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    }


def test_sparsify_is_a_stage_between_prune_and_quantize() -> None:
    assert STAGES == ("prune", "sparsify", "quantize")


@pytest.mark.slow
@pytest.mark.parametrize(("amount", "min_accuracy"), [(0.5, 0.9), (0.9, 0.0)])
def test_per_layer_sparsity_zeroes_that_share_of_each_layer(  # type: ignore[no-untyped-def]
    digits_task, digits_ctx, amount, min_accuracy
) -> None:
    base = profile_model(digits_task.model, digits_ctx.example_inputs)
    spec = VariantSpec((Step("sparsity", {"amount": amount}),))
    sparse = build_variant(digits_task.model, spec, digits_ctx)
    weights = _weights(sparse)
    for name, w in weights.items():
        zeros = float((w == 0).float().mean())
        if name == "classifier.3":  # the classifier stays dense
            assert zeros == 0.0
        else:
            assert zeros == pytest.approx(amount, abs=0.01), name
    prof = profile_model(sparse, digits_ctx.example_inputs)
    assert prof.macs_per_inference == base.macs_per_inference  # dense kernels: same work
    assert prof.params == base.params
    assert base.sparsity == 0.0
    assert prof.sparsity == pytest.approx(amount, abs=0.02)  # the classifier is 0.8% of it
    # Permanent and plain: no masks, no hooks, ordinary parameters.
    assert not any(torch_prune.is_pruned(m) for m in sparse.modules())
    assert all("mask" not in k and "orig" not in k for k in sparse.state_dict())
    assert sparse(digits_task.eval_inputs[:4]).shape == (4, 10)
    acc = evaluate(sparse, digits_task.eval_inputs, digits_task.eval_labels)
    assert min_accuracy <= acc <= 1.0


@pytest.mark.slow
def test_global_ranking_spreads_zeros_unevenly(digits_task, digits_ctx) -> None:  # type: ignore[no-untyped-def]
    spec = VariantSpec((Step("sparsity", {"amount": 0.7, "global_pruning": True}),))
    sparse = build_variant(digits_task.model, spec, digits_ctx)
    shares = [
        float((w == 0).float().mean()) for n, w in _weights(sparse).items() if n != "classifier.3"
    ]
    assert max(shares) - min(shares) > 0.1
    assert weight_sparsity(sparse) == pytest.approx(0.7, abs=0.02)


@pytest.mark.slow
def test_recovery_keeps_the_zeros(digits_task, digits_ctx) -> None:  # type: ignore[no-untyped-def]
    x, y = digits_task.eval_inputs, digits_task.eval_labels
    raw = build_variant(
        digits_task.model, VariantSpec((Step("sparsity", {"amount": 0.95}),)), digits_ctx
    )
    tuned = build_variant(
        digits_task.model,
        VariantSpec((Step("sparsity", {"amount": 0.95, "recovery_epochs": 1}),)),
        digits_ctx,
    )
    assert weight_sparsity(tuned) == pytest.approx(weight_sparsity(raw), abs=1e-6)
    assert evaluate(tuned, x, y) > evaluate(raw, x, y)


@pytest.mark.slow
def test_sparsity_composes_with_pruning_and_quantization(digits_task, digits_ctx) -> None:  # type: ignore[no-untyped-def]
    spec = VariantSpec(
        (
            Step("prune_channels", {"ratio": 0.5}),
            Step("sparsity", {"amount": 0.5}),
            Step("dynamic_int8"),
        )
    )
    model = build_variant(digits_task.model, spec, digits_ctx)
    prof = profile_model(model, digits_ctx.example_inputs)
    assert prof.sparsity >= 0.45  # zeros survive int8 (zero quantizes to zero)
    base = profile_model(digits_task.model, digits_ctx.example_inputs)
    assert prof.macs_per_inference < base.macs_per_inference / 2
    with pytest.raises(VariantError, match="prune -> sparsify -> quantize"):
        build_variant(
            digits_task.model,
            VariantSpec((Step("sparsity"), Step("prune_channels"))),
            digits_ctx,
        )


def test_sparsity_on_a_transformer(tiny_bert) -> None:  # type: ignore[no-untyped-def]
    sparse = build_variant(
        tiny_bert.model, VariantSpec((Step("sparsity", {"amount": 0.6}),)), tiny_bert.ctx
    )
    emb = sparse.encoder.embeddings.word_embeddings.weight
    base_emb = tiny_bert.model.encoder.embeddings.word_embeddings.weight
    assert torch.equal(emb, base_emb)  # embeddings are lookups, not matmuls: left alone
    q = sparse.encoder.encoder.layer[0].attention.self.query.weight
    assert float((q == 0).float().mean()) == pytest.approx(0.6, abs=0.01)
    assert sparse(tiny_bert.inputs).shape == (48, 3)
