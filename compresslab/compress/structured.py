"""What channel and head pruning share: torch-pruning's importances, steps, recovery, history.

:class:`StructuredPruning` is the base of the structured pruning methods (:mod:`.prune`):
iterative torch-pruning steps, optional recovery fine-tuning after each, and the pruning
history an export replays (:func:`replay_pruning`).
"""

from __future__ import annotations

import functools
from abc import abstractmethod
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from compresslab.availability import Availability
from compresslab.compress.base import Applied, CompressContext, CompressionMethod
from compresslab.compress.layers import named_keep_modules, output_layers
from compresslab.compress.recovery import (
    recover,
    recovery_applicable,
    recovery_teacher,
    require_training_data,
)
from compresslab.errors import VariantError
from compresslab.versions import version_of

IMPORTANCES = ("l1", "l2", "taylor", "fpgm", "lamp", "random")

#: Examples whose gradients rank channels for the ``taylor`` importance.
TAYLOR_EXAMPLES = 256
_TAYLOR_FIX = "it ranks channels by loss gradients; pick l1, l2, fpgm, lamp or random"


def make_importance(name: str) -> Any:
    """torch-pruning's importance criterion called ``name`` (one of :data:`IMPORTANCES`)."""
    import torch_pruning as tp

    if name == "l1":
        return tp.importance.GroupMagnitudeImportance(p=1)
    if name == "l2":
        return tp.importance.GroupMagnitudeImportance(p=2)
    if name == "taylor":
        return tp.importance.GroupTaylorImportance()
    if name == "fpgm":
        return tp.importance.FPGMImportance()
    if name == "lamp":
        return tp.importance.LAMPImportance()
    if name == "random":
        return tp.importance.RandomImportance()
    raise VariantError(f"unknown importance '{name}': use one of {', '.join(IMPORTANCES)}")


def replay_pruning(
    model: nn.Module, history: list[list[Any]], example_inputs: torch.Tensor
) -> nn.Module:
    """Redo torch-pruning's ``history`` on a fresh copy of the unpruned model (in place)."""
    import torch_pruning as tp

    try:
        graph = tp.DependencyGraph().build_dependency(model, example_inputs=example_inputs)
        graph.load_pruning_history(history)
    except Exception as e:  # torch-pruning raises plain exceptions
        raise VariantError(
            f"cannot replay the pruning history on the base model ({e}): the artefact was "
            "made from a different base model; export it again from this task"
        ) from e
    return model


def _taylor_gradients(model: nn.Module, ctx: CompressContext) -> None:
    """Accumulate the loss gradient of a batch of training examples (for ``taylor``)."""
    x, y = require_training_data(ctx, what="importance 'taylor'", fix=_TAYLOR_FIX)
    gen = torch.Generator().manual_seed(ctx.seed)
    n = x.shape[0]
    idx = torch.randperm(n, generator=gen)[: min(n, TAYLOR_EXAMPLES)]
    model.eval()  # gradients without updating BatchNorm statistics or using dropout
    model.zero_grad(set_to_none=True)
    with torch.enable_grad():
        for start in range(0, idx.numel(), 64):
            batch = idx[start : start + 64]
            loss = F.cross_entropy(model(x[batch]), y[batch])
            (loss * batch.numel() / idx.numel()).backward()


@functools.cache
def torch_pruning_available() -> Availability:
    """Prunes a tiny convolution-linear model with torch-pruning and runs it."""
    try:
        import torch_pruning as tp
    except ImportError as e:
        return Availability(
            False, f"torch-pruning is not installed ({e}): pip install 'torch-pruning>=1.6,<1.7'"
        )
    try:
        model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4, 2))
        x = torch.zeros(1, 1, 4, 4)
        pruner = tp.pruner.BasePruner(
            model,
            x,
            importance=tp.importance.GroupMagnitudeImportance(p=2),
            pruning_ratio=0.5,
            ignored_layers=[model[3]],
        )
        pruner.step()
        with torch.inference_mode():
            out = model(x)
    except Exception as e:  # torch-pruning raises plain exceptions
        return Availability(False, f"torch-pruning cannot prune with this torch ({e})")
    if model[0].out_channels != 4 or out.shape != (1, 2):
        return Availability(False, "torch-pruning did not prune a tiny model as expected")
    # The distribution's version: torch-pruning 1.6.1 still says 1.6.0 in __version__.
    version = version_of("torch-pruning") or tp.__version__
    return Availability(True, f"torch-pruning {version} pruned a tiny model here")


class StructuredPruning(CompressionMethod):
    """What channel and head pruning share: importance, iterative steps, recovery, history."""

    stage = "prune"

    def available(self) -> Availability:
        """Needs the torch-pruning package."""
        return torch_pruning_available()

    def applicable(
        self, model: nn.Module, params: Mapping[str, Any], ctx: CompressContext
    ) -> Availability:
        """Taylor importance and recovery fine-tuning need the task's training data."""
        if str(params.get("importance")) == "taylor" and (
            ctx.train_inputs is None or ctx.train_labels is None
        ):
            return Availability(
                False,
                "importance 'taylor' needs training data, and this task provides none: "
                f"{_TAYLOR_FIX}, or return train_inputs/train_labels from the task",
            )
        return recovery_applicable(params, ctx)

    def apply(self, model: nn.Module, params: Mapping[str, Any], ctx: CompressContext) -> nn.Module:
        """Prune ``model`` in place (it is a private copy) and return it."""
        return self.apply_step(model, params, ctx).model

    @abstractmethod
    def _nothing_to_do(self, params: Mapping[str, Any]) -> bool:
        """True when ``params`` remove nothing (the model is returned as it is)."""

    @abstractmethod
    def _make_pruner(
        self,
        model: nn.Module,
        params: Mapping[str, Any],
        ctx: CompressContext,
        keep: list[nn.Module],
    ) -> Any:
        """A torch-pruning pruner for ``model`` that leaves the ``keep`` modules whole."""

    def _after_step(self, model: nn.Module) -> None:
        """Called after every pruning step (e.g. to update head counts)."""

    def apply_step(
        self, model: nn.Module, params: Mapping[str, Any], ctx: CompressContext
    ) -> Applied:
        """Prune, optionally fine-tune, and report torch-pruning's history."""
        if self._nothing_to_do(params):
            return Applied(model, pruning_history=[])
        importance = str(params["importance"])
        epochs = int(params["recovery_epochs"])
        distill = float(params["distill"])
        steps = int(params["iterative_steps"])
        # Fail before any work when the training data a parameter needs is missing.
        if importance == "taylor":
            require_training_data(ctx, what="importance 'taylor'", fix=_TAYLOR_FIX)
        teacher = recovery_teacher(model, params, ctx)
        keep = output_layers(model, ctx.example_inputs)
        keep += named_keep_modules(model, ctx.keep_modules)
        keep += [m for m in model.modules() if isinstance(m, nn.Embedding)]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(ctx.seed)  # random importance and ties are reproducible
            try:
                pruner = self._make_pruner(model, params, ctx, keep)
            except VariantError:
                raise
            except Exception as e:  # torch-pruning raises plain exceptions on unsupported graphs
                raise VariantError(f"torch-pruning could not trace this model: {e}") from e
            for _ in range(steps):
                if importance == "taylor":
                    _taylor_gradients(model, ctx)
                try:
                    pruner.step()
                except Exception as e:
                    raise VariantError(f"torch-pruning could not prune this model: {e}") from e
                model.zero_grad(set_to_none=True)
                self._after_step(model)
                if epochs > 0:
                    recover(
                        model,
                        ctx,
                        epochs=epochs,
                        lr=float(params["recovery_lr"]),
                        teacher=teacher,
                        distill=distill,
                    )
        history = [list(h) for h in pruner.pruning_history()]
        model.eval()
        return Applied(model, pruning_history=history)

    def restore_structure(
        self,
        model: nn.Module,
        params: Mapping[str, Any],
        ctx: CompressContext,
        *,
        pruning_history: list[list[Any]] | None,
    ) -> nn.Module:
        """Replay the recorded pruning history on a fresh copy of the base model."""
        if pruning_history:
            replay_pruning(model, pruning_history, ctx.example_inputs)
            self._after_step(model)
        return model
