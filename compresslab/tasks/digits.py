"""The embedded default task: a small CNN on scikit-learn's 8x8 handwritten digits.

The data ships with scikit-learn (1797 images, 10 classes), so the task runs offline anywhere.
The CNN is trained with a fixed seed on first use (a few seconds on two cores) and cached.
The evaluation pool is the 360 test images (20%); the task has no confirmation split.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from compresslab.errors import TaskError
from compresslab.tasks.base import Task
from compresslab.tasks.cache import cache_key, load_state, save_state
from compresslab.tasks.training import train_classifier

log = logging.getLogger(__name__)

DEFAULT_OPTIONS: dict[str, Any] = {
    "width": 32,
    "hidden": 128,
    "epochs": 30,
    "seed": 0,
    "test_fraction": 0.2,
    "lr": 2e-3,
}


class DigitsCNN(nn.Module):
    """Two 3x3 convolutions, a max-pool and two linear layers; ``width`` channels at first."""

    def __init__(self, *, width: int = 32, hidden: int = 128, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(2 * width * 16, hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of 1x8x8 images."""
        return self.classifier(self.features(x))


def load_digits_split(
    *, seed: int = 0, test_fraction: float = 0.2
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stratified train/test split of the digits, scaled to [0, 1], shaped N x 1 x 8 x 8."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(data.target, dtype=torch.long)
    idx = list(range(len(y)))
    train_idx, test_idx = train_test_split(
        idx, test_size=test_fraction, random_state=seed, stratify=data.target
    )
    tr, te = torch.tensor(train_idx), torch.tensor(test_idx)
    return x[tr], y[tr], x[te], y[te]


def digits_task(options: dict[str, Any]) -> Task:
    """Build the digits task; ``options`` may set width, hidden, epochs, seed, test_fraction, lr.

    The task has no confirmation split (:meth:`~compresslab.tasks.base.Task.confirmation` gives
    None): its 360 test images are all the held-out data it has, and the pool needs them all.
    """
    unknown = set(options) - set(DEFAULT_OPTIONS)
    if unknown:
        raise TaskError(
            f"unknown option(s) for task 'digits': {', '.join(sorted(unknown))}; "
            f"valid options are {', '.join(DEFAULT_OPTIONS)}"
        )
    cfg = {**DEFAULT_OPTIONS, **options}
    x_tr, y_tr, x_te, y_te = load_digits_split(seed=cfg["seed"], test_fraction=cfg["test_fraction"])
    torch.manual_seed(cfg["seed"])
    model = DigitsCNN(width=int(cfg["width"]), hidden=int(cfg["hidden"]))
    key = cache_key("digits-cnn-v1", cfg)
    state = load_state(key)
    if state is not None:
        try:
            model.load_state_dict(state)
        except RuntimeError:
            state = None
    if state is None:
        log.info("training the digits CNN (first use; cached afterwards under %s)", key)
        train_classifier(
            model, x_tr, y_tr, epochs=cfg["epochs"], lr=cfg["lr"], batch_size=64, seed=cfg["seed"]
        )
        save_state(key, model.state_dict())
    model.eval()
    return Task(
        name="digits",
        model=model,
        eval_inputs=x_te,
        eval_labels=y_te,
        num_classes=10,
        train_inputs=x_tr,
        train_labels=y_tr,
        description=(
            f"DigitsCNN(width={cfg['width']}) on scikit-learn load_digits, "
            f"stratified {1 - cfg['test_fraction']:.0%}/{cfg['test_fraction']:.0%} split, "
            f"seed {cfg['seed']}"
        ),
        info={"train_examples": str(len(y_tr)), "eval_examples": str(len(y_te))},
    )
