from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from task_data import FASHION, require_fashion_mnist

from compresslab.errors import TaskError
from compresslab.tasks.data import stratified_subset
from compresslab.tasks.fashion_mnist import (
    FashionCNN,
    eval_split_indices,
    fashion_mnist_task,
    load_fashion_mnist,
    read_idx,
)
from compresslab.tasks.metrics import accuracy, predict


def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    return header + array.astype(np.uint8).tobytes()


def test_read_idx_raw_and_gzip(tmp_path: Path) -> None:
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "raw-idx3-ubyte").write_bytes(_idx_bytes(images))
    (tmp_path / "gz-idx3-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(images)))
    for name in ("raw-idx3-ubyte", "gz-idx3-ubyte.gz"):
        out = read_idx(tmp_path / name)
        assert out.shape == (2, 3, 4) and out.dtype == np.uint8
        assert np.array_equal(out, images)


def test_read_idx_rejects_bad_files(tmp_path: Path) -> None:
    labels = np.arange(10, dtype=np.uint8)
    (tmp_path / "short").write_bytes(_idx_bytes(labels)[:-3])
    with pytest.raises(TaskError, match="truncated or corrupt"):
        read_idx(tmp_path / "short")
    (tmp_path / "bad").write_bytes(b"\x12\x34\x08\x01" + bytes(8))
    with pytest.raises(TaskError, match="bad magic number"):
        read_idx(tmp_path / "bad")


def test_missing_data_names_the_debian_package(tmp_path: Path) -> None:
    with pytest.raises(TaskError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(data_dir=tmp_path / "nowhere")
    with pytest.raises(TaskError, match="has no t10k-images-idx3-ubyte"):
        load_fashion_mnist(data_dir=tmp_path)  # exists, but empty


def test_official_test_split() -> None:
    require_fashion_mnist()
    x, y = load_fashion_mnist(data_dir=FASHION, split="test")
    assert x.shape == (10000, 1, 28, 28) and x.dtype == torch.float32
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert y.dtype == torch.long and int(y.min()) == 0 and int(y.max()) == 9
    assert torch.bincount(y).tolist() == [1000] * 10


def test_stratified_subset_is_stable_and_proportional() -> None:
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    a = stratified_subset(labels, 10, seed=0, salt="t")
    assert torch.equal(a, stratified_subset(labels, 10, seed=0, salt="t"))
    assert torch.bincount(labels[a]).tolist() == [5, 3, 2]
    assert len(set(a.tolist())) == 10
    assert not torch.equal(a, stratified_subset(labels, 10, seed=1, salt="t"))


def test_the_confirmation_split_is_what_the_pool_leaves_out() -> None:
    labels = torch.arange(10).repeat(100)  # 1000 "test images", 100 per class
    pool, confirm = eval_split_indices(labels, test_size=300, confirm_examples=200, seed=0)
    # The pool is the stratified subset of earlier versions.
    assert torch.equal(pool, stratified_subset(labels, 300, seed=0, salt="test"))
    assert confirm is not None and confirm.numel() == 200
    assert not set(pool.tolist()) & set(confirm.tolist())
    assert torch.bincount(labels[confirm]).tolist() == [20] * 10
    assert len(set(labels[confirm[:30]].tolist())) >= 6  # a prefix mixes the classes
    # At most what the pool leaves out; none when it takes everything (or none is asked).
    _, rest = eval_split_indices(labels, test_size=900, confirm_examples=200, seed=0)
    assert rest is not None and rest.numel() == 100
    all_pool, none = eval_split_indices(labels, test_size=None, confirm_examples=200, seed=0)
    assert none is None and torch.equal(all_pool, torch.arange(1000))
    assert eval_split_indices(labels, test_size=300, confirm_examples=0, seed=0)[1] is None


@pytest.mark.slow
def test_tiny_training_run_learns_and_is_cached() -> None:
    require_fashion_mnist()
    options = {"train_size": 1000, "test_size": 300, "epochs": 2, "width": 4, "hidden": 32}
    task = fashion_mnist_task(options)
    assert isinstance(task.model, FashionCNN)
    assert task.eval_inputs.shape == (300, 1, 28, 28)
    assert torch.bincount(task.eval_labels).tolist() == [30] * 10
    assert task.train_inputs is not None and task.train_inputs.shape[0] == 1000
    acc = accuracy(predict(task.model, task.eval_inputs), task.eval_labels)
    assert acc > 0.4, f"accuracy {acc:.3f} (chance: 0.1)"
    again = fashion_mnist_task(options)
    old, new = task.model.state_dict(), again.model.state_dict()
    assert all(torch.equal(old[k], new[k]) for k in old)
    assert torch.equal(again.eval_inputs, task.eval_inputs)
    # The confirmation split: 2000 of the 9700 test images the pool leaves out.
    confirm = task.confirmation()
    assert confirm is not None and confirm.eval_inputs.shape == (2000, 1, 28, 28)
    assert torch.bincount(confirm.eval_labels).tolist() == [200] * 10
    acc = accuracy(confirm.predictions(task.model), confirm.eval_labels)
    assert acc > 0.4, f"confirmation accuracy {acc:.3f} (chance: 0.1)"
    assert task.info["confirm_examples"] == "2000"
    whole = fashion_mnist_task({**options, "test_size": None})  # the pool takes all 10k
    assert whole.confirmation() is None and whole.info["confirm_examples"] == "0"


def test_unknown_option_lists_the_valid_ones() -> None:
    with pytest.raises(TaskError, match="valid options are train_size"):
        fashion_mnist_task({"train": 10})
    with pytest.raises(TaskError, match="`confirm_examples` must be an integer >= 0"):
        fashion_mnist_task({"confirm_examples": -1})
