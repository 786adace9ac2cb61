"""Fashion-MNIST (28x28 greyscale clothing, 10 classes) with a small CNN trained on first use.

The data are the four IDX files of the official release, as the Debian package
``dataset-fashion-mnist`` installs them (``/usr/share/datasets/fashion-mnist``, gzipped; raw
files work too). The CNN trains with a fixed seed on a stratified subset of the 60k training
images (a few epochs: well under a minute on two cores) and is cached. The evaluation pool is
the official 10k test set, or a stratified seeded subset of it (``test_size``); the test
images the pool leaves out give the confirmation split (``confirm_examples``).
"""

from __future__ import annotations

import gzip
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from compresslab.errors import TaskError
from compresslab.tasks.base import Task
from compresslab.tasks.cache import cache_key, load_state, save_state
from compresslab.tasks.data import (
    positive_int,
    require_path,
    resolve_options,
    stratified_subset,
)
from compresslab.tasks.training import train_classifier

log = logging.getLogger(__name__)

TASK_NAME = "fashion-mnist"

#: Where ``apt-get install dataset-fashion-mnist`` puts the IDX files.
DEFAULT_DATA_DIR = Path("/usr/share/datasets/fashion-mnist")

#: The class names of labels 0..9.
CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

# IDX element types by the third magic byte (only unsigned bytes occur in (Fashion-)MNIST,
# the rest of the format is read for completeness).
_IDX_DTYPES: dict[int, str] = {
    0x08: "u1",
    0x09: "i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}

#: Every option of the task with its default (see the provider function's docstring).
DEFAULT_OPTIONS: dict[str, Any] = {
    "train_size": 10000,
    "test_size": None,
    "confirm_examples": 2000,
    "epochs": 4,
    "width": 16,
    "hidden": 128,
    "seed": 0,
    "lr": 3e-3,
    "batch_size": 128,
    "data_dir": None,
}


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (raw or gzipped, detected by content) as a numpy array.

    Raises:
        TaskError: the file is missing, truncated or not IDX.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise TaskError(f"cannot read the IDX file {p} ({e}): reinstall the data") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise TaskError(f"{p} is not an IDX file (bad magic number): reinstall the data")
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise TaskError(
            f"{p} holds {len(raw)} bytes but its header promises {expected}: the file is "
            "truncated or corrupt; reinstall the data"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def _find(data_dir: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem):
        if (data_dir / name).is_file():
            return data_dir / name
    raise TaskError(
        f"{data_dir} has no {stem}[.gz]: install the data with "
        "`apt-get install dataset-fashion-mnist`, or point the task option `data_dir` at a "
        "folder with the four Fashion-MNIST IDX files"
    )


def load_fashion_mnist(
    *, data_dir: str | Path | None = None, split: str = "test"
) -> tuple[torch.Tensor, torch.Tensor]:
    """One official split as ``N x 1 x 28 x 28`` float images in [0, 1] and int64 labels.

    Args:
        data_dir: the folder with the IDX files (default: the Debian location).
        split: ``"train"`` (60k) or ``"test"`` (10k).

    Raises:
        TaskError: the files are missing or corrupt; the message names the Debian package.
    """
    if split not in ("train", "test"):
        raise TaskError(f"split must be 'train' or 'test', not {split!r}")
    folder = require_path(
        data_dir or DEFAULT_DATA_DIR,
        what="the Fashion-MNIST IDX files",
        package="dataset-fashion-mnist",
        option="data_dir",
    )
    images = read_idx(_find(folder, _FILES[f"{split}_images"]))
    labels = read_idx(_find(folder, _FILES[f"{split}_labels"]))
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise TaskError(
            f"the {split} IDX files of {folder} do not pair up (images {images.shape}, labels "
            f"{labels.shape}): reinstall the data"
        )
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    y = torch.from_numpy(labels.astype(np.int64))
    return x, y


class FashionCNN(nn.Module):
    """Two conv-BN-ReLU-pool blocks (``width`` then ``2 * width`` channels) and an MLP head."""

    def __init__(self, *, width: int = 16, hidden: int = 128, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(2 * width * 7 * 7, hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of 1x28x28 images."""
        out: torch.Tensor = self.classifier(self.features(x))
        return out


def eval_split_indices(
    labels: torch.Tensor, *, test_size: int | None, confirm_examples: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Indices of the evaluation pool and of the confirmation split in the official test set.

    The pool is every image in file order (``test_size`` None) or a stratified seeded subset
    of ``test_size``; the confirmation split is a stratified seeded subset of at most
    ``confirm_examples`` of the images the pool leaves out (None when it leaves none, or
    ``confirm_examples`` is 0), so the two never share an image.
    """
    n = labels.shape[0]
    if test_size is None:
        pool = torch.arange(n)
    else:
        pool = stratified_subset(labels, test_size, seed=seed, salt="test")
    left = torch.ones(n, dtype=torch.bool)
    left[pool] = False
    rest = torch.nonzero(left).flatten()
    if confirm_examples == 0 or rest.numel() == 0:
        return pool, None
    size = min(confirm_examples, int(rest.numel()))
    return pool, rest[stratified_subset(labels[rest], size, seed=seed, salt="confirm")]


@dataclass(frozen=True)
class _Settings:
    """The task's checked options (see :func:`fashion_mnist_task`)."""

    train_size: int
    epochs: int
    width: int
    hidden: int
    batch_size: int
    test_size: int | None
    confirm_examples: int
    seed: int


def _check_settings(cfg: dict[str, Any]) -> _Settings:
    """The options checked: sizes positive, ``test_size`` positive or null.

    Raises:
        TaskError: an option is not an integer of the right sign.
    """
    train_size = positive_int(TASK_NAME, "train_size", cfg["train_size"])
    epochs = positive_int(TASK_NAME, "epochs", cfg["epochs"])
    width = positive_int(TASK_NAME, "width", cfg["width"])
    hidden = positive_int(TASK_NAME, "hidden", cfg["hidden"])
    batch_size = positive_int(TASK_NAME, "batch_size", cfg["batch_size"])
    test_size = (
        None if cfg["test_size"] is None else positive_int(TASK_NAME, "test_size", cfg["test_size"])
    )
    confirm_n = cfg["confirm_examples"]
    if isinstance(confirm_n, bool) or not isinstance(confirm_n, int) or confirm_n < 0:
        raise TaskError(
            f"task '{TASK_NAME}': option `confirm_examples` must be an integer >= 0, got "
            f"{confirm_n!r}"
        )
    return _Settings(
        train_size=train_size,
        epochs=epochs,
        width=width,
        hidden=hidden,
        batch_size=batch_size,
        test_size=test_size,
        confirm_examples=confirm_n,
        seed=int(cfg["seed"]),
    )


def _eval_data(
    cfg: dict[str, Any], settings: _Settings
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """The evaluation pool's images and labels, then the confirmation split's (or None).

    Raises:
        TaskError: the test files are missing or corrupt.
    """
    x_all, y_all = load_fashion_mnist(data_dir=cfg["data_dir"], split="test")
    keep, confirm = eval_split_indices(
        y_all,
        test_size=settings.test_size,
        confirm_examples=settings.confirm_examples,
        seed=settings.seed,
    )
    x_te, y_te = x_all[keep].contiguous(), y_all[keep].contiguous()
    x_cf = None if confirm is None else x_all[confirm].contiguous()
    y_cf = None if confirm is None else y_all[confirm].contiguous()
    return x_te, y_te, x_cf, y_cf


def _train_data(cfg: dict[str, Any], settings: _Settings) -> tuple[torch.Tensor, torch.Tensor]:
    """The training images and labels: a stratified seeded subset of ``train_size``.

    Raises:
        TaskError: the training files are missing or corrupt.
    """
    x_all, y_all = load_fashion_mnist(data_dir=cfg["data_dir"], split="train")
    pick = stratified_subset(y_all, settings.train_size, seed=settings.seed, salt="train")
    return x_all[pick].contiguous(), y_all[pick].contiguous()


def _trained_model(
    cfg: dict[str, Any], settings: _Settings, x_tr: torch.Tensor, y_tr: torch.Tensor
) -> FashionCNN:
    """The CNN for these options in eval mode: the cached one, else trained and cached."""
    torch.manual_seed(settings.seed)
    model = FashionCNN(width=settings.width, hidden=settings.hidden)
    # data_dir is left out of the key (the same files anywhere give the same model), and so is
    # confirm_examples (held-out images only: the model does not depend on it).
    key = cache_key(
        "fashion-mnist-cnn-v1",
        {k: v for k, v in cfg.items() if k not in ("data_dir", "confirm_examples")},
    )
    state = load_state(key)
    if state is not None:
        try:
            model.load_state_dict(state)
        except RuntimeError:
            state = None
    if state is None:
        log.info("training the Fashion-MNIST CNN (first use; cached afterwards as %s)", key)
        train_classifier(
            model,
            x_tr,
            y_tr,
            epochs=settings.epochs,
            lr=float(cfg["lr"]),
            batch_size=settings.batch_size,
            seed=settings.seed,
        )
        save_state(key, model.state_dict())
    model.eval()
    return model


def fashion_mnist_task(options: dict[str, Any]) -> Task:
    """Build the Fashion-MNIST task.

    Options (all optional):
        train_size: training images, a stratified subset of the 60k (10000).
        test_size: evaluation images (the pool), a stratified subset of the official 10k
            test set (null: all 10000, in file order).
        confirm_examples: most images of the confirmation split: a stratified subset of the
            test images the pool leaves out (2000; none when ``test_size`` is null or this
            is 0).
        epochs: training epochs (4).
        width: channels of the first convolution; the second has twice as many (16).
        hidden: units of the hidden linear layer (128).
        seed: subsets, initial weights and shuffling (0).
        lr: Adam's learning rate (0.003).
        batch_size: training batch size (128).
        data_dir: folder with the IDX files (default ``/usr/share/datasets/fashion-mnist``).

    Raises:
        TaskError: an option is wrong, or the data cannot be found.
    """
    cfg = resolve_options(TASK_NAME, options, DEFAULT_OPTIONS)
    settings = _check_settings(cfg)
    x_te, y_te, x_cf, y_cf = _eval_data(cfg, settings)
    x_tr, y_tr = _train_data(cfg, settings)
    model = _trained_model(cfg, settings, x_tr, y_tr)
    return Task(
        name=TASK_NAME,
        model=model,
        eval_inputs=x_te,
        eval_labels=y_te,
        num_classes=len(CLASSES),
        train_inputs=x_tr,
        train_labels=y_tr,
        confirm_inputs=x_cf,
        confirm_labels=y_cf,
        description=(
            f"FashionCNN(width={settings.width}) trained {settings.epochs} epochs on "
            f"{len(y_tr)} stratified Fashion-MNIST training images, evaluated on "
            f"{'the official 10k test set' if settings.test_size is None else f'{len(y_te)} of it'}"
            f"{'' if y_cf is None else f', confirmed on {len(y_cf)} other test images'}, "
            f"seed {settings.seed}"
        ),
        info={
            "train_examples": str(len(y_tr)),
            "eval_examples": str(len(y_te)),
            "confirm_examples": str(0 if y_cf is None else len(y_cf)),
        },
    )
