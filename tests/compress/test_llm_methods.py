"""Compression methods on a tiny random Llama: structured pruning, int8 by module, the rest."""

from __future__ import annotations

import copy

import pytest
import torch
from llm_support import tiny_task
from torch import nn

from compresslab.bench import compress_context
from compresslab.compress import CompressContext, Step, VariantSpec, build_variant, get_method
from compresslab.compress.layers import linear_kind, linear_targets, transformer_blocks
from compresslab.compress.llm_prune import decoder_blocks, replay
from compresslab.errors import VariantError
from compresslab.recipe import Recipe
from compresslab.tasks.causal_lm import CausalLMTask
from compresslab.tasks.generation import find_causal_lm


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> CausalLMTask:
    return tiny_task(tmp_path_factory.mktemp("tiny-compress"))


@pytest.fixture(scope="module")
def ctx(tiny: CausalLMTask) -> CompressContext:
    recipe = Recipe.model_validate(
        {"name": "t", "task": {"name": "causal_lm"}, "compression": [{"method": "bf16"}]}
    )
    return compress_context(recipe, tiny)


def _build(tiny: CausalLMTask, ctx: CompressContext, *steps: Step) -> nn.Module:
    return build_variant(tiny.model, VariantSpec(tuple(steps)), ctx)


def _generates(tiny: CausalLMTask, model: nn.Module) -> torch.Tensor:
    work = tiny.workload(model, tiny.inference_batch(2))
    with torch.inference_mode():
        out = work.runner(work.inputs)
    assert out.shape == (2, tiny.new_tokens)
    return out


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_prune_llm_removes_whole_kv_groups(tiny: CausalLMTask, ctx: CompressContext) -> None:
    before = _state(tiny.model)
    model = _build(tiny, ctx, Step("prune_llm", {"head_ratio": 0.5}))
    _, blocks = decoder_blocks(model)
    for block in blocks:
        attn = block.self_attn
        # 4 query heads over 2 KV heads of 16: one KV group (1 KV head, 2 query heads) goes.
        assert attn.k_proj.out_features == attn.v_proj.out_features == 16
        assert attn.q_proj.out_features == attn.o_proj.in_features == 32
        assert attn.num_key_value_groups == 2  # what attention expects still holds
    _generates(tiny, model)
    quality = tiny.quality(model)
    assert quality["perplexity_ratio"] != pytest.approx(1.0)
    after = tiny.model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())  # base untouched


def test_prune_llm_keeps_one_group_and_rounds_mlp_widths(
    tiny: CausalLMTask, ctx: CompressContext
) -> None:
    model = _build(
        tiny, ctx, Step("prune_llm", {"head_ratio": 0.9, "mlp_ratio": 0.3, "round_to": 16})
    )
    for block in decoder_blocks(model)[1]:
        assert block.self_attn.k_proj.out_features == 16  # at least one group stays
        width = block.mlp.gate_proj.out_features
        assert width == block.mlp.up_proj.out_features == block.mlp.down_proj.in_features
        assert width % 16 == 0 and width < 128
    _generates(tiny, model)


def test_prune_llm_drops_the_least_influential_blocks(
    tiny: CausalLMTask, ctx: CompressContext
) -> None:
    model = _build(tiny, ctx, Step("prune_llm", {"drop_blocks": 2, "keep_ends": 1}))
    name, blocks = decoder_blocks(model)
    assert len(blocks) == 2
    assert [b.self_attn.layer_idx for b in blocks] == [0, 1]
    lm = find_causal_lm(model).lm
    assert lm.config.num_hidden_layers == 2
    assert find_causal_lm(tiny.model).lm.config.num_hidden_layers == 4  # base untouched
    base_blocks = decoder_blocks(tiny.model)[1]
    # keep_ends: the first and the last block are the base's first and last.
    assert torch.equal(blocks[0].mlp.up_proj.weight, base_blocks[0].mlp.up_proj.weight)
    assert torch.equal(blocks[-1].mlp.up_proj.weight, base_blocks[-1].mlp.up_proj.weight)
    out = _generates(tiny, model)
    no_cache = tiny.workload(model, tiny.inference_batch(2), kv_cache=False)
    with torch.inference_mode():
        assert torch.equal(no_cache.runner(no_cache.inputs), out)
    assert name.endswith("layers")


def test_prune_llm_history_replays_on_a_fresh_copy(
    tiny: CausalLMTask, ctx: CompressContext
) -> None:
    method = get_method("prune_llm")
    params = method.resolve({"head_ratio": 0.5, "mlp_ratio": 0.25, "drop_blocks": 1})
    applied = method.apply_step(copy.deepcopy(tiny.model), params, ctx)
    assert applied.pruning_history
    fresh = replay(copy.deepcopy(tiny.model), applied.pruning_history)
    fresh.load_state_dict(applied.model.state_dict())
    x = tiny.example_inputs()
    with torch.inference_mode():
        assert torch.equal(fresh(x), applied.model(x))


def test_prune_llm_magnitude_needs_no_calibration(tiny: CausalLMTask) -> None:
    bare = CompressContext(example_inputs=tiny.example_inputs())
    model = build_variant(
        tiny.model,
        VariantSpec((Step("prune_llm", {"mlp_ratio": 0.5, "importance": "magnitude"}),)),
        bare,
    )
    assert all(b.mlp.gate_proj.out_features == 64 for b in decoder_blocks(model)[1])
    with pytest.raises(VariantError, match="calibration text"):
        build_variant(tiny.model, VariantSpec((Step("prune_llm", {"mlp_ratio": 0.5}),)), bare)


def test_prune_llm_refuses_other_models_and_too_many_blocks(
    tiny: CausalLMTask, ctx: CompressContext
) -> None:
    cnn = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    with pytest.raises(VariantError, match="Llama-style decoder blocks"):
        build_variant(
            cnn,
            VariantSpec((Step("prune_llm", {"mlp_ratio": 0.5}),)),
            CompressContext(example_inputs=torch.zeros(2, 1, 8, 8)),
        )
    with pytest.raises(VariantError, match="lower drop_blocks"):
        _build(tiny, ctx, Step("prune_llm", {"drop_blocks": 3, "keep_ends": 1}))


def test_transformer_blocks_and_linear_kinds(tiny: CausalLMTask) -> None:
    blocks = transformer_blocks(tiny.model)
    assert [n for n, _ in blocks] == [f"lm.model.layers.{i}" for i in range(4)]
    b = "lm.model.layers.0"
    assert linear_kind(f"{b}.self_attn.q_proj", b) == "attention"
    assert linear_kind(f"{b}.mlp.down_proj", b) == "mlp"
    assert linear_kind("lm.lm_head", None) == "other"
    assert transformer_blocks(nn.Sequential(nn.Linear(2, 2))) == []


@pytest.mark.parametrize(
    ("params", "expect"),
    [
        ({"layers": "attention", "keep_classifier": True}, {"attention"}),
        ({"layers": "mlp", "keep_classifier": True}, {"mlp"}),
        ({"keep_classifier": True}, {"attention", "mlp"}),
        ({}, {"attention", "mlp", "other"}),
    ],
)
def test_dynamic_int8_quantizes_the_chosen_modules(
    tiny: CausalLMTask, ctx: CompressContext, params: dict[str, object], expect: set[str]
) -> None:
    model = _build(tiny, ctx, Step("dynamic_int8", params))
    blocks = [n for n, _ in transformer_blocks(tiny.model)]
    kinds: dict[str, set[str]] = {"float": set(), "int8": set()}
    for name, m in model.named_modules():
        block = next((b for b in blocks if name.startswith(b + ".")), None)
        if type(m) is nn.Linear:
            kinds["float"].add(linear_kind(name, block))
        elif "quantized" in type(m).__module__ and hasattr(m, "weight"):
            kinds["int8"].add(linear_kind(name, block))
    assert kinds["int8"] == expect
    assert not kinds["float"] & expect
    _generates(tiny, model)


def test_dynamic_int8_keeps_the_first_and_last_blocks(
    tiny: CausalLMTask, ctx: CompressContext
) -> None:
    targets = [n for n, _ in linear_targets(tiny.model, ctx, keep_classifier=True, keep_ends=1)]
    assert targets and all(".layers.1." in n or ".layers.2." in n for n in targets)
    model = _build(tiny, ctx, Step("dynamic_int8", {"keep_ends": 1, "keep_classifier": True}))
    assert type(model.get_submodule("lm.model.layers.0.mlp.up_proj")) is nn.Linear
    assert type(model.get_submodule("lm.model.layers.1.mlp.up_proj")) is not nn.Linear
    with pytest.raises(VariantError, match="transformer blocks"):
        build_variant(
            nn.Sequential(nn.Linear(4, 3)),
            VariantSpec((Step("dynamic_int8", {"layers": "mlp"}),)),
            CompressContext(example_inputs=torch.zeros(2, 4)),
        )


@pytest.mark.parametrize(
    "step",
    [
        Step("bnb_int8", {"threshold": 6.0}),
        Step("bnb_4bit", {"quant_type": "nf4"}),
        Step("bnb_4bit", {"quant_type": "fp4"}),
        Step("torchao_int8_weight_only"),
        Step("bf16"),
    ],
    ids=lambda s: s.label(),
)
def test_every_quantizer_runs_the_generation_workload(
    tiny: CausalLMTask, ctx: CompressContext, step: Step
) -> None:
    model = _build(tiny, ctx, step)
    _generates(tiny, model)
    q = tiny.quality(model)
    assert q["perplexity"] > 1 and q["perplexity_ratio"] > 0
    # The output layer (lm_head, tied to the embeddings) stays float by default.
    assert type(find_causal_lm(model).lm.lm_head) is nn.Linear
    assert len(tiny.answers(model)) == 2


def test_pruned_then_quantized(tiny: CausalLMTask, ctx: CompressContext) -> None:
    model = _build(
        tiny,
        ctx,
        Step("prune_llm", {"mlp_ratio": 0.5, "drop_blocks": 1}),
        Step("dynamic_int8", {"layers": "attention", "keep_classifier": True}),
    )
    _generates(tiny, model)
    assert len(find_causal_lm(model).lm.model.layers) == 3
