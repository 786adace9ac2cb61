from __future__ import annotations

import pytest
import torch
from task_data import MINILM_SMALL, require_minilm, require_wordnet

from compresslab.errors import TaskError
from compresslab.recipe import TaskSpec
from compresslab.tasks import load_task
from compresslab.tasks.cache import cache_key
from compresslab.tasks.metrics import accuracy, predict
from compresslab.tasks.minilm import DEFAULT_OPTIONS, fit_head, head_key, minilm_wordnet_task
from compresslab.tasks.text import MeanPoolClassifier


@pytest.mark.slow
def test_task_is_a_minilm_wrapper_over_token_ids(minilm_small) -> None:  # type: ignore[no-untyped-def]
    from transformers import BertModel

    task = minilm_small
    assert isinstance(task.model, MeanPoolClassifier)
    assert isinstance(task.model.encoder, BertModel)
    assert isinstance(task.model.classifier, torch.nn.Linear)
    n_params = sum(p.numel() for p in task.model.encoder.parameters())
    assert n_params == pytest.approx(22.7e6, rel=0.01)
    assert task.eval_inputs.dtype == torch.long
    assert task.eval_inputs.shape == (4 * (25 + 20), 24)
    assert task.confirm_inputs is not None and task.confirm_inputs.shape == (4 * 15, 24)
    assert task.train_inputs is not None and task.train_inputs.shape == (4 * 30, 24)
    # Every row starts with [CLS] (101) and pads with 0.
    assert bool((task.eval_inputs[:, 0] == 101).all())
    assert bool((task.eval_inputs == 0).any())
    assert task.num_classes == 4
    with torch.inference_mode():
        logits = task.model(task.example_inputs(5))
    assert logits.shape == (5, 4) and logits.dtype == torch.float32


@pytest.mark.slow
def test_accuracy_is_far_above_chance(minilm_small) -> None:  # type: ignore[no-untyped-def]
    acc = accuracy(predict(minilm_small.model, minilm_small.eval_inputs), minilm_small.eval_labels)
    assert acc > 0.6, f"accuracy {acc:.3f} (chance: 0.25)"


@pytest.mark.slow
def test_padding_columns_change_nothing(minilm_small) -> None:  # type: ignore[no-untyped-def]
    # The wrapper derives the attention mask from pad id 0: extra padding must not move logits.
    x = minilm_small.eval_inputs[:6]
    padded = torch.cat([x, torch.zeros(6, 8, dtype=torch.long)], dim=1)
    with torch.inference_mode():
        assert torch.allclose(minilm_small.model(x), minilm_small.model(padded), atol=1e-5)


@pytest.mark.slow
def test_second_load_reuses_the_cached_head_and_the_same_split(minilm_small) -> None:  # type: ignore[no-untyped-def]
    again = load_task(TaskSpec(name="minilm-wordnet", options=dict(MINILM_SMALL)))
    assert torch.equal(again.eval_inputs, minilm_small.eval_inputs)
    assert torch.equal(again.eval_labels, minilm_small.eval_labels)
    assert torch.equal(again.model.classifier.weight, minilm_small.model.classifier.weight)
    # Stratified: 25 + 20 of each of the 4 classes.
    assert torch.bincount(again.eval_labels).tolist() == [45, 45, 45, 45]
    assert again.info["categories"] == "animal,food,person,plant"


@pytest.mark.slow
def test_growing_the_pool_keeps_the_head_and_the_first_texts(minilm_small, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from compresslab.tasks import minilm

    def refit(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("the head was fitted again: its cache key changed with the pool")

    monkeypatch.setattr(minilm, "fit_head", refit)
    larger = minilm_wordnet_task({**MINILM_SMALL, "extra_test_per_class": 35})
    assert torch.equal(larger.model.classifier.weight, minilm_small.model.classifier.weight)
    assert torch.equal(larger.train_inputs, minilm_small.train_inputs)
    n = minilm_small.eval_inputs.shape[0]
    assert larger.eval_inputs.shape[0] == 4 * (25 + 35)
    # The smaller pool is a prefix of the larger one (test split first, then extra texts).
    assert torch.equal(larger.eval_inputs[: 4 * 25], minilm_small.eval_inputs[: 4 * 25])
    assert torch.equal(larger.eval_labels[: 4 * 25], minilm_small.eval_labels[: 4 * 25])
    assert larger.eval_inputs.shape[0] > n
    assert torch.equal(larger.confirm_inputs, minilm_small.confirm_inputs)
    assert larger.info["eval_examples"] == "240" and larger.info["confirm_examples"] == "60"
    assert "pool of 240 held-out texts" in larger.description


@pytest.mark.slow
def test_confirmation_copy_is_judged_on_the_confirmation_split(minilm_small) -> None:  # type: ignore[no-untyped-def]
    confirm = minilm_small.confirmation()
    assert confirm is not None and confirm.model is minilm_small.model
    assert torch.equal(confirm.eval_inputs, minilm_small.confirm_inputs)
    assert torch.equal(confirm.eval_labels, minilm_small.confirm_labels)
    assert torch.bincount(confirm.eval_labels).tolist() == [15, 15, 15, 15]
    assert confirm.confirmation() is None and confirm.info["eval_split"] == "confirmation"
    preds = confirm.predictions(confirm.model)
    assert preds.shape == (60,)
    assert accuracy(preds, confirm.eval_labels) > 0.6
    # No confirmation text is in the pool or the training split.
    rows = {tuple(r) for r in confirm.eval_inputs.tolist()}
    assert not rows & {tuple(r) for r in minilm_small.eval_inputs.tolist()}
    assert not rows & {tuple(r) for r in minilm_small.train_inputs.tolist()}
    none = minilm_wordnet_task({**MINILM_SMALL, "confirm_per_class": 0})
    assert none.confirmation() is None and none.info["confirm_examples"] == "0"


def test_the_head_key_ignores_the_held_out_options(tmp_path) -> None:  # type: ignore[no-untyped-def]
    classes = tuple(DEFAULT_OPTIONS["categories"])
    key = head_key(dict(DEFAULT_OPTIONS), classes=classes, encoder_path=tmp_path)
    more = {**DEFAULT_OPTIONS, "extra_test_per_class": 1000, "confirm_per_class": 7}
    assert head_key(more, classes=classes, encoder_path=tmp_path) == key
    other = {**DEFAULT_OPTIONS, "train_per_class": 99}
    assert head_key(other, classes=classes, encoder_path=tmp_path) != key
    # Pinned: the key of the options of earlier versions, so their cached heads stay valid.
    earlier = {
        "categories": list(classes), "train_per_class": 100, "test_per_class": 50,
        "max_length": 32, "seed": 0, "c": 10.0, "wordnet_path": None,
        "encoder_path": str(tmp_path.resolve()),
    }  # fmt: skip
    assert key == cache_key("minilm-wordnet-head-v1", earlier)


def test_fit_head_separates_separable_features() -> None:
    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 16, generator=gen) * 3
    labels = torch.arange(3).repeat(20)
    feats = centres[labels] + torch.randn(60, 16, generator=gen) * 0.3
    head = fit_head(feats, labels, num_classes=3, c=10.0, seed=0)
    assert head.weight.shape == (3, 16)
    assert bool((head(feats).argmax(1) == labels).all())


def test_bad_options_say_what_is_valid() -> None:
    with pytest.raises(TaskError, match="valid options are categories"):
        minilm_wordnet_task({"classes": ["animal"]})
    with pytest.raises(TaskError, match="`max_length` must be a positive integer"):
        minilm_wordnet_task({"max_length": 0})
    with pytest.raises(TaskError, match="option `c` must be a positive number"):
        minilm_wordnet_task({"c": -1})
    with pytest.raises(TaskError, match="`extra_test_per_class` must be an integer >= 0"):
        minilm_wordnet_task({"extra_test_per_class": -1})
    with pytest.raises(TaskError, match="`confirm_per_class` must be an integer >= 0"):
        minilm_wordnet_task({"confirm_per_class": 2.5})


def test_missing_wordnet_names_the_package(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TaskError, match="apt-get install wordnet-base"):
        minilm_wordnet_task({"wordnet_path": str(tmp_path / "none")})


@pytest.mark.slow
def test_missing_encoder_folder_is_a_task_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    require_wordnet()
    with pytest.raises(TaskError, match="set the task option `encoder_path`"):
        minilm_wordnet_task({"encoder_path": str(tmp_path / "none"), **_tiny()})
    (tmp_path / "empty").mkdir()
    with pytest.raises(TaskError, match="has no config.json"):
        minilm_wordnet_task({"encoder_path": str(tmp_path / "empty"), **_tiny()})


def _tiny() -> dict[str, int]:
    return {"train_per_class": 2, "test_per_class": 2, "extra_test_per_class": 0}


def test_minilm_package_is_found() -> None:
    path = require_minilm()
    assert (path / "config.json").is_file()
