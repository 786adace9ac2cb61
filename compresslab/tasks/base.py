"""What a task provider returns: a trained model, its evaluation data and its metric."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass(frozen=True)
class Task:
    """A model with the data it is judged on.

    Attributes:
        name: short name shown in reports.
        model: the trained base model in eval mode; compression never mutates it.
        eval_inputs: held-out inputs, one row per example.
        eval_labels: integer class labels for ``eval_inputs``.
        num_classes: number of classes of the classifier.
        train_inputs: training inputs (for recovery fine-tuning), if the provider has them.
        train_labels: labels for ``train_inputs``.
        keep_layers: names of modules that pruning must keep whole (besides the classifier,
            which is found automatically).
        description: one line for the report (model, data, split).
    """

    name: str
    model: nn.Module
    eval_inputs: torch.Tensor
    eval_labels: torch.Tensor
    num_classes: int
    train_inputs: torch.Tensor | None = None
    train_labels: torch.Tensor | None = None
    keep_layers: tuple[str, ...] = ()
    description: str = ""
    info: dict[str, str] = field(default_factory=dict)

    def example_inputs(self, batch_size: int = 2) -> torch.Tensor:
        """A small batch of real inputs for tracing and shape checks."""
        return self.eval_inputs[:batch_size]

    def inference_batch(self, batch_size: int) -> torch.Tensor:
        """A batch of ``batch_size`` real evaluation inputs (cycled if the split is smaller)."""
        n = self.eval_inputs.shape[0]
        idx = torch.arange(batch_size) % n
        return self.eval_inputs[idx].contiguous()
