"""Exported language-model variants reload and generate the same tokens as when built."""

from __future__ import annotations

import json

import pytest
import torch
from llm_support import tiny_task

from compresslab.bench import compress_context
from compresslab.compress import Step, VariantSpec, build_variant
from compresslab.export import export_variant, load_variant
from compresslab.recipe import Recipe
from compresslab.tasks.causal_lm import CausalLMTask

RECIPE = {"name": "llm-export", "task": {"name": "causal_lm"}, "compression": [{"method": "bf16"}]}

SPECS = {
    "pruned-groups-mlp-blocks": (
        Step("prune_llm", {"head_ratio": 0.5, "mlp_ratio": 0.25, "drop_blocks": 1}),
    ),
    "pruned+int8-attention": (
        Step("prune_llm", {"mlp_ratio": 0.5, "round_to": 16}),
        Step("dynamic_int8", {"layers": "attention", "keep_classifier": True}),
    ),
    "int8-everything": (Step("dynamic_int8"),),
    "nf4": (Step("bnb_4bit", {"quant_type": "nf4"}),),
    "llm.int8": (Step("bnb_int8"),),
    "torchao": (Step("torchao_int8_weight_only"),),
    "bf16": (Step("bf16"),),
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> CausalLMTask:
    return tiny_task(tmp_path_factory.mktemp("tiny-export"))


def _tokens(task: CausalLMTask, model: torch.nn.Module) -> torch.Tensor:
    work = task.workload(model, task.inference_batch(3))
    with torch.inference_mode():
        out: torch.Tensor = work.runner(work.inputs)
    return out


@pytest.mark.parametrize("name", list(SPECS))
def test_exported_llm_variant_generates_the_same_tokens(
    tiny: CausalLMTask, tmp_path, name: str
) -> None:  # type: ignore[no-untyped-def]
    ctx = compress_context(Recipe.model_validate(RECIPE), tiny)
    spec = VariantSpec(SPECS[name])
    built = build_variant(tiny.model, spec, ctx)
    out = export_variant(
        task=tiny,
        spec=spec,
        ctx=ctx,
        recipe_dict=RECIPE,
        out_dir=tmp_path / "artefact",
        measured_model=built,
    )
    meta = json.loads((out / "variant.json").read_text())
    assert meta["check"]["built"]["equal"] and meta["check"]["measured"]["equal"]
    loaded = load_variant(out, task=tiny)
    x = tiny.eval_inputs
    with torch.inference_mode():
        assert torch.equal(loaded(x), built(x))
    assert torch.equal(_tokens(tiny, loaded), _tokens(tiny, built))
    assert tiny.answers(loaded) == tiny.answers(built)
    if name.startswith("pruned"):
        history = json.loads((out / "pruning_history.json").read_text())
        assert history["0"], "the pruning history is exported"
