"""Accuracy metrics computed on a task's held-out split."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from compresslab.errors import VariantError
from compresslab.paired import wilson


def model_device(model: nn.Module) -> torch.device | None:
    """The device of ``model``'s first parameter or buffer (None for a model without any)."""
    for param in model.parameters():
        return param.device
    for buffer in model.buffers():
        return buffer.device
    return None


@torch.inference_mode()
def predict(model: nn.Module, inputs: torch.Tensor, *, batch_size: int = 256) -> torch.Tensor:
    """Predicted class indices for ``inputs``, in batches, on the CPU.

    The inputs follow the model: each batch is moved to the model's device (a GPU when the
    recipe's ``energy.device`` is one).
    """
    device = model_device(model)
    preds = []
    for start in range(0, inputs.shape[0], batch_size):
        batch = inputs[start : start + batch_size]
        if device is not None and batch.device != device:
            batch = batch.to(device)
        logits = model(batch)
        if isinstance(logits, tuple | list):
            logits = logits[0]
        logits = logits.float()
        if not torch.isfinite(logits).all():
            raise VariantError(
                "the variant produced NaN or infinite outputs: it is numerically broken "
                "(too aggressive a compression); this trial is recorded as failed"
            )
        preds.append(logits.argmax(dim=-1).cpu())
    return torch.cat(preds)


def accuracy(preds: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy (computed in float64: correct / total)."""
    return int((preds == labels).sum()) / int(labels.numel())


def macro_f1(preds: torch.Tensor, labels: torch.Tensor) -> float:
    """Unweighted mean of per-class F1 over the classes present in ``labels``."""
    scores = []
    for c in torch.unique(labels):
        tp = int(((preds == c) & (labels == c)).sum())
        fp = int(((preds == c) & (labels != c)).sum())
        fn = int(((preds != c) & (labels == c)).sum())
        denom = 2 * tp + fp + fn
        scores.append(2 * tp / denom if denom else 0.0)
    return sum(scores) / len(scores)


METRICS: dict[str, Callable[[torch.Tensor, torch.Tensor], float]] = {
    "accuracy": accuracy,
    "macro_f1": macro_f1,
}


def wilson_interval(successes: int, n: int, *, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (accuracy on a finite test set)."""
    return wilson(successes, n, z=z)


def evaluate(
    model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *, metric: str = "accuracy"
) -> float:
    """The task metric of ``model`` on ``inputs``/``labels``."""
    return METRICS[metric](predict(model, inputs), labels)
