"""Recovery fine-tuning after a structural change, shared by channel pruning and sparsity.

The training-data check comes first (a missing split fails before any work), then the optional
distillation teacher's logits are taken from the unchanged model, then :func:`recover`
fine-tunes the changed model on the task's training data.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from compresslab.availability import Availability
from compresslab.compress.base import CompressContext, ParamDef
from compresslab.errors import VariantError

#: Softmax temperature of the distillation loss (Hinton et al. 2015 use 2 to 20).
DISTILL_TEMPERATURE = 2.0

#: The recovery parameters every method with recovery declares (plus its own ``recovery_lr``).
RECOVERY_PARAMS: dict[str, ParamDef] = {
    "recovery_epochs": ParamDef(
        "int", 0, low=0, high=50, doc="fine-tuning epochs on the task's training data afterwards"
    ),
    "distill": ParamDef(
        "float",
        0.0,
        low=0.0,
        high=1.0,
        doc="weight of distillation from the unpruned model during recovery (0: labels only)",
    ),
}


def require_training_data(
    ctx: CompressContext, *, what: str, fix: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """The task's training data, or a VariantError that says what needed it and how to fix it."""
    if ctx.train_inputs is None or ctx.train_labels is None:
        raise VariantError(
            f"{what} needs training data, and this task provides none: {fix}, "
            "or return train_inputs/train_labels from the task"
        )
    return ctx.train_inputs, ctx.train_labels


def recovery_applicable(params: Mapping[str, Any], ctx: CompressContext) -> Availability:
    """Recovery fine-tuning (``recovery_epochs > 0``) needs the task's training data."""
    if int(params.get("recovery_epochs", 0)) > 0 and (
        ctx.train_inputs is None or ctx.train_labels is None
    ):
        return Availability(
            False,
            "recovery_epochs > 0 needs training data, and this task provides none: set "
            "recovery_epochs to 0, or return train_inputs/train_labels from the task",
        )
    return Availability(True, "no recovery, or training data present")


def teacher_logits(
    teacher: nn.Module, inputs: torch.Tensor, *, batch_size: int = 256
) -> torch.Tensor:
    """The unpruned model's logits for every training example (computed once)."""
    teacher.eval()
    with torch.inference_mode():
        parts = [teacher(inputs[s : s + batch_size]) for s in range(0, inputs.shape[0], batch_size)]
    return torch.cat(parts).float()


def recovery_teacher(
    model: nn.Module, params: Mapping[str, Any], ctx: CompressContext
) -> torch.Tensor | None:
    """Check recovery's training data up front; the teacher's logits when distilling.

    Called before the model is changed: ``model`` (the method's private copy of the base
    model) is then the teacher.
    """
    if int(params["recovery_epochs"]) <= 0:
        return None
    x, _ = require_training_data(ctx, what="recovery_epochs > 0", fix="set recovery_epochs to 0")
    if float(params["distill"]) <= 0:
        return None
    return teacher_logits(copy.deepcopy(model), x)


def recover(
    model: nn.Module,
    ctx: CompressContext,
    *,
    epochs: int,
    lr: float = 1e-3,
    batch_size: int = 64,
    teacher: torch.Tensor | None = None,
    distill: float = 0.0,
) -> None:
    """Fine-tune a compressed model on the task's training data (recovers lost accuracy).

    Args:
        model: the model, trained in place.
        ctx: supplies the training data and the seed.
        epochs: passes over the training data.
        lr: Adam's learning rate.
        batch_size: examples per step.
        teacher: the unpruned model's logits for every training example, to distil from.
        distill: weight of the distillation loss (KL divergence to the teacher's softened
            outputs at temperature :data:`DISTILL_TEMPERATURE`); ``1 - distill`` weighs the
            cross-entropy on the labels.

    Raises:
        VariantError: the task provides no training data.
    """
    x, y = require_training_data(ctx, what="recovery_epochs > 0", fix="set recovery_epochs to 0")
    gen = torch.Generator().manual_seed(ctx.seed)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    temp = DISTILL_TEMPERATURE
    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        torch.manual_seed(ctx.seed)  # dropout masks are reproducible
        model.train()
        for _ in range(epochs):
            perm = torch.randperm(x.shape[0], generator=gen)
            for start in range(0, x.shape[0], batch_size):
                batch = perm[start : start + batch_size]
                opt.zero_grad()
                logits = model(x[batch])
                loss = F.cross_entropy(logits, y[batch])
                if teacher is not None and distill > 0:
                    kd = F.kl_div(
                        F.log_softmax(logits / temp, dim=-1),
                        F.log_softmax(teacher[batch] / temp, dim=-1),
                        reduction="batchmean",
                        log_target=True,
                    )
                    loss = (1 - distill) * loss + distill * kd * temp * temp
                loss.backward()
                opt.step()
    model.eval()
    model.zero_grad(set_to_none=True)
