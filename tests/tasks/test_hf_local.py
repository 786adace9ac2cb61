from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from task_data import require_wordnet

from compresslab.errors import TaskError
from compresslab.recipe import TaskSpec
from compresslab.tasks import load_task
from compresslab.tasks.hf_local import hf_local_task, label_ids
from compresslab.tasks.text import SequenceClassifier


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory, minilm_tokenizer) -> Path:  # type: ignore[no-untyped-def]
    """A randomly initialised 2-layer BertForSequenceClassification saved with a tokenizer."""
    from transformers import BertConfig, BertForSequenceClassification

    folder = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=minilm_tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=3,
        id2label={0: "animal", 1: "food", 2: "plant"},
        label2id={"animal": 0, "food": 1, "plant": 2},
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    minilm_tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.slow
def test_wordnet_data_and_the_wrapper(tiny_bert: Path) -> None:
    require_wordnet()
    task = load_task(
        TaskSpec(
            name="hf_local",
            options={
                "path": str(tiny_bert),
                "categories": ["plant", "animal", "food"],
                "per_class": 6,
                "max_length": 16,
            },
        )
    )
    assert isinstance(task.model, SequenceClassifier)
    assert task.num_classes == 3
    assert task.eval_inputs.shape == (18, 16) and task.eval_inputs.dtype == torch.long
    # Labels follow the model's label2id names, not the order the categories are listed in.
    assert torch.bincount(task.eval_labels).tolist() == [6, 6, 6]
    x = task.eval_inputs[:4]
    with torch.inference_mode():
        logits = task.model(x)
        direct = task.model.model(input_ids=x, attention_mask=(x != 0).long()).logits
    assert logits.shape == (4, 3)
    assert torch.allclose(logits, direct)
    assert not task.model.training


def test_csv_and_jsonl_data_with_label_names_and_indices(tiny_bert: Path, tmp_path: Path) -> None:
    csv_file = tmp_path / "data.csv"
    csv_file.write_text(
        "sentence,y\n"
        + "".join(f'"a dog, number {i}",animal\n' for i in range(4))
        + "".join(f"soup {i},1\n" for i in range(4))
        + "".join(f"a fern {i},plant\n" for i in range(4))
    )
    task = hf_local_task(
        {
            "path": str(tiny_bert),
            "data": str(csv_file),
            "text_column": "sentence",
            "label_column": "y",
            "max_length": 12,
            "train_fraction": 0.25,
        }
    )
    assert task.eval_inputs.shape == (9, 12)
    assert task.train_inputs is not None and task.train_inputs.shape == (3, 12)
    assert torch.bincount(task.eval_labels).tolist() == [3, 3, 3]
    assert task.train_labels is not None
    assert torch.bincount(task.train_labels).tolist() == [1, 1, 1]

    jsonl = tmp_path / "data.jsonl"
    rows = [{"text": f"t{i}", "label": i % 3} for i in range(9)]
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    small = hf_local_task({"path": str(tiny_bert), "data": str(jsonl), "limit": 6})
    assert torch.bincount(small.eval_labels).tolist() == [2, 2, 2]


@pytest.mark.slow
def test_errors_say_how_to_fix(tiny_bert: Path, tmp_path: Path) -> None:
    with pytest.raises(TaskError, match="needs the option `path`"):
        hf_local_task({})
    with pytest.raises(TaskError, match="set the task option `path`"):
        hf_local_task({"path": str(tmp_path / "none")})
    with pytest.raises(TaskError, match="has no config.json"):
        hf_local_task({"path": str(tmp_path)})
    bad = tmp_path / "bad.csv"
    bad.write_text("text,category\nhello,1\n")
    with pytest.raises(TaskError, match="no column `label`"):
        hf_local_task({"path": str(tiny_bert), "data": str(bad)})
    with pytest.raises(TaskError, match=r"use \.csv, \.tsv or \.jsonl"):
        hf_local_task({"path": str(tiny_bert), "data": str(tiny_bert / "config.json")})
    with pytest.raises(TaskError, match="list as many"):
        hf_local_task({"path": str(tiny_bert), "categories": ["person", "time"]})


def test_label_ids() -> None:
    names = {"neg": 0, "pos": 1}
    assert label_ids(["pos", "0", 1, " neg "], label2id=names, num_labels=2) == [1, 0, 1, 0]
    with pytest.raises(TaskError, match="neither a class index nor one of"):
        label_ids(["meh"], label2id=names, num_labels=2)
    with pytest.raises(TaskError, match="outside the model's 2 classes"):
        label_ids([2], label2id=names, num_labels=2)
