"""Exported variants reload to the same outputs as the variant that was built and measured."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors import safe_open
from torch import nn

from compresslab.compress import CompressContext, Step, VariantSpec, build_variant, notes_of
from compresslab.errors import VariantError
from compresslab.export import FILES, FORMAT, MANIFEST, export_variant, load_variant
from compresslab.tasks import Task
from compresslab.tasks.text import MeanPoolClassifier

RECIPE = {"name": "export-test", "task": {"name": "digits"}, "compression": [{"method": "bf16"}]}


@pytest.fixture(scope="module")
def ctx(digits_task):  # type: ignore[no-untyped-def]
    return CompressContext(
        example_inputs=digits_task.example_inputs(),
        train_inputs=digits_task.train_inputs,
        train_labels=digits_task.train_labels,
        seed=3,
    )


SPECS = {
    "pruned": (Step("prune_channels", {"ratio": 0.5, "importance": "l1"}),),
    "pruned+recovery": (
        Step("prune_channels", {"ratio": 0.6, "recovery_epochs": 1, "iterative_steps": 2}),
    ),
    "pruned+dynamic_int8": (Step("prune_channels", {"ratio": 0.4}), Step("dynamic_int8")),
    "bf16": (Step("bf16"),),
    "sparse+bnb_int8": (Step("sparsity", {"amount": 0.5}), Step("bnb_int8")),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SPECS))
def test_exported_variant_reloads_to_equal_outputs(  # type: ignore[no-untyped-def]
    digits_task, ctx, tmp_path, name
) -> None:
    spec = VariantSpec(SPECS[name])
    measured_model = build_variant(digits_task.model, spec, ctx)  # what a search measured
    out = export_variant(
        task=digits_task,
        spec=spec,
        ctx=ctx,
        recipe_dict=RECIPE,
        out_dir=tmp_path / "artefact",
        measured={"accuracy": 0.99, "energy_j_per_inference": 1e-5},
        measured_model=measured_model,
    )
    assert sorted(p.name for p in out.iterdir()) == sorted([*FILES.values(), MANIFEST])
    loaded = load_variant(out, task=digits_task)
    x = digits_task.eval_inputs
    with torch.inference_mode():
        assert torch.equal(loaded(x), measured_model(x))

    meta = json.loads((out / "variant.json").read_text())
    assert meta["format"] == FORMAT and meta["label"] == spec.label()
    assert [s["method"] for s in meta["steps"]] == [s.method for s in spec.steps]
    first = meta["steps"][0]["params"]
    assert set(first) >= set(spec.steps[0].params)  # defaults filled in
    assert meta["seed"] == 3
    assert meta["check"]["built"]["equal"] and meta["check"]["measured"]["equal"]
    assert yaml.safe_load((out / "recipe.yaml").read_text()) == RECIPE
    assert json.loads((out / "measured.json").read_text())["accuracy"] == 0.99
    versions = json.loads((out / "versions.json").read_text())
    for key in ("python", "torch", "torch-pruning", "bitsandbytes", "torchao", "transformers"):
        assert versions[key], key
    assert versions["compresslab"]

    history = json.loads((out / "pruning_history.json").read_text())
    if spec.steps[0].method == "prune_channels":
        assert history["0"], "a pruning step records its history"
        convs = [m.out_channels for m in loaded.modules() if isinstance(m, nn.Conv2d)]
        assert convs[0] < 32 and convs[1] < 64
    else:
        assert history["0"] is None
    # The weights file holds plain float tensors only (quantization is re-applied at load).
    with safe_open(str(out / "weights.safetensors"), framework="pt") as f:
        dtypes = {f.get_tensor(k).dtype for k in f.keys()}  # noqa: SIM118
    assert dtypes <= {torch.float32, torch.int64}


def _bert_task() -> Task:
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=64,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=16,
    )
    model = MeanPoolClassifier(BertModel(config), nn.Linear(32, 3)).eval()
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 64, (32, 10), generator=gen)
    ids[::3, 7:] = 0
    labels = torch.randint(0, 3, (32,), generator=gen)
    return Task(
        name="tiny-bert",
        model=model,
        eval_inputs=ids,
        eval_labels=labels,
        num_classes=3,
        train_inputs=ids,
        train_labels=labels,
    )


def test_pruned_heads_and_4bit_transformer_reloads(tmp_path: Path) -> None:
    task = _bert_task()
    ctx = CompressContext(
        example_inputs=task.example_inputs(),
        train_inputs=task.train_inputs,
        train_labels=task.train_labels,
    )
    spec = VariantSpec(
        (
            Step("prune_heads", {"head_ratio": 0.5, "ffn_ratio": 0.5, "recovery_epochs": 1}),
            # blocksize 32: the pruned encoder's 32-wide layers fit bitsandbytes' packed CPU
            # kernel (AVX512-BF16 CPUs); its 16-wide q/k/v and attention outputs do not and
            # stay float32, on those CPUs only: the reload must make the same choice.
            Step("bnb_4bit", {"quant_type": "fp4", "blocksize": 32}),
        )
    )
    measured = build_variant(task.model, spec, ctx)
    out = export_variant(
        task=task, spec=spec, ctx=ctx, recipe_dict={"name": "t"}, out_dir=tmp_path / "a"
    )
    loaded = load_variant(out, task=task)
    attn = loaded.encoder.encoder.layer[1].attention.self
    assert (attn.num_attention_heads, attn.all_head_size) == (2, 16)
    with torch.inference_mode():
        assert torch.equal(loaded(task.eval_inputs), measured(task.eval_inputs))
    assert task.model.encoder.encoder.layer[1].attention.self.num_attention_heads == 4
    assert _four_bit(loaded) == _four_bit(measured)
    assert "encoder.encoder.layer.1.intermediate.dense" in _four_bit(loaded)
    assert notes_of(loaded) == notes_of(measured)


def _four_bit(model: nn.Module) -> set[str]:
    from compresslab.compress.bnb import bitsandbytes

    return {n for n, m in model.named_modules() if isinstance(m, bitsandbytes().nn.Linear4bit)}


@pytest.mark.slow
def test_loading_onto_another_base_model_is_refused(digits_task, ctx, tmp_path) -> None:  # type: ignore[no-untyped-def]
    spec = VariantSpec((Step("prune_channels", {"ratio": 0.3}),))
    out = export_variant(
        task=digits_task, spec=spec, ctx=ctx, recipe_dict=RECIPE, out_dir=tmp_path / "a"
    )
    other_model = copy.deepcopy(digits_task.model)
    with torch.no_grad():
        other_model.classifier[3].bias += 1.0
    other = dataclasses.replace(digits_task, model=other_model)
    with pytest.raises(VariantError, match="not the base model"):
        load_variant(out, task=other)
    (out / "weights.safetensors").unlink()
    with pytest.raises(VariantError, match="weights.safetensors is missing"):
        load_variant(out, task=digits_task)
    meta = json.loads((out / "variant.json").read_text())
    (out / "variant.json").write_text(json.dumps(meta | {"format": "other/9"}))
    with pytest.raises(VariantError, match="has format 'other/9'"):
        load_variant(out, task=digits_task)
    with pytest.raises(VariantError, match="not a complete compresslab artefact"):
        load_variant(tmp_path / "nowhere", task=digits_task)


@pytest.fixture(scope="module")
def exported(digits_task, ctx, tmp_path_factory):  # type: ignore[no-untyped-def]
    """One clean artefact; each tampering test works on its own copy."""
    spec = VariantSpec((Step("prune_channels", {"ratio": 0.4}), Step("dynamic_int8")))
    return export_variant(
        task=digits_task,
        spec=spec,
        ctx=ctx,
        recipe_dict=RECIPE,
        out_dir=tmp_path_factory.mktemp("clean") / "artefact",
        measured={"accuracy": 0.99},
    )


def _copy(src: Path, tmp_path: Path) -> Path:
    import shutil

    dst = tmp_path / "copy"
    shutil.copytree(src, dst)
    return dst


def _noisy_weights(path: Path) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(path))
    gen = torch.Generator().manual_seed(0)
    noisy = {
        k: v + 0.01 * torch.randn(v.shape, generator=gen) if v.is_floating_point() else v
        for k, v in tensors.items()
    }
    save_file(noisy, str(path), metadata={"format": FORMAT})


def _zeroed_weights(path: Path) -> None:
    from safetensors.torch import load_file, save_file

    save_file({k: torch.zeros_like(v) for k, v in load_file(str(path)).items()}, str(path))


def _edited_step(path: Path) -> None:
    meta = json.loads(path.read_text())
    meta["steps"][-1]["method"] = "bf16"
    path.write_text(json.dumps(meta))


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _edited_measured(path: Path) -> None:
    path.write_text(json.dumps({"accuracy": 0.5}))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "tamper"),
    [
        ("weights.safetensors", _noisy_weights),
        ("weights.safetensors", _zeroed_weights),
        ("weights.safetensors", _truncated),
        ("variant.json", _edited_step),
        ("measured.json", _edited_measured),
        ("pruning_history.json", _truncated),
    ],
)
def test_a_tampered_or_damaged_artefact_is_refused(  # type: ignore[no-untyped-def]
    digits_task, exported, tmp_path, name, tamper
) -> None:
    art = _copy(exported, tmp_path)
    tamper(art / name)
    with pytest.raises(VariantError, match=f"{name} is not the file that was exported"):
        load_variant(art, task=digits_task)


@pytest.mark.slow
def test_a_missing_manifest_is_refused(digits_task, exported, tmp_path) -> None:  # type: ignore[no-untyped-def]
    art = _copy(exported, tmp_path)
    (art / MANIFEST).unlink()
    with pytest.raises(VariantError, match="manifest.json is missing"):
        load_variant(art, task=digits_task)


@pytest.mark.slow
def test_an_existing_folder_is_replaced_only_when_asked(  # type: ignore[no-untyped-def]
    digits_task, ctx, tmp_path
) -> None:
    from compresslab.errors import UsageError

    out = tmp_path / "art"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    spec = VariantSpec((Step("bf16"),))
    kwargs = {"task": digits_task, "spec": spec, "ctx": ctx, "recipe_dict": RECIPE}
    with pytest.raises(UsageError, match=r"exists and is not empty.*--force \(replace=True\)"):
        export_variant(out_dir=out, **kwargs)
    assert (out / "keep.txt").read_text() == "mine"
    export_variant(out_dir=out, replace=True, **kwargs)
    assert not (out / "keep.txt").exists() and (out / MANIFEST).is_file()
    assert (out / "weights.safetensors").stat().st_mode & 0o044  # readable by the team
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left
