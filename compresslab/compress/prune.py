"""Structured channel pruning with torch-pruning (whole channels removed: MACs really drop)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from compresslab.compress.base import CompressContext, CompressionMethod, ParamDef
from compresslab.energy.base import Availability
from compresslab.errors import VariantError

IMPORTANCES = ("l1", "l2", "fpgm", "lamp", "random")


def _importance(name: str) -> Any:
    import torch_pruning as tp

    if name == "l1":
        return tp.importance.GroupMagnitudeImportance(p=1)
    if name == "l2":
        return tp.importance.GroupMagnitudeImportance(p=2)
    if name == "fpgm":
        return tp.importance.FPGMImportance()
    if name == "lamp":
        return tp.importance.LAMPImportance()
    if name == "random":
        return tp.importance.RandomImportance()
    raise VariantError(f"unknown importance '{name}': use one of {', '.join(IMPORTANCES)}")


def output_layers(model: nn.Module, example_inputs: torch.Tensor) -> list[nn.Module]:
    """Layers whose output has the model's output shape: the classifier, which must be kept.

    Pruning the classifier's output channels would remove classes, so it is always ignored.
    """
    shapes: dict[int, torch.Size] = {}
    hooks = []
    for module in model.modules():
        if isinstance(module, nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d):
            hooks.append(
                module.register_forward_hook(lambda m, _i, o: shapes.__setitem__(id(m), o.shape))
            )
    try:
        with torch.inference_mode():
            out = model(example_inputs)
    finally:
        for h in hooks:
            h.remove()
    return [m for m in model.modules() if shapes.get(id(m)) == out.shape]


class ChannelPruning(CompressionMethod):
    """Remove a fraction of channels from every prunable layer, ranked by an importance."""

    name = "prune_channels"
    stage = "prune"
    summary = "structured channel pruning (torch-pruning); the classifier is kept"
    params: ClassVar[Mapping[str, ParamDef]] = {
        "ratio": ParamDef(
            "float", 0.3, low=0.0, high=0.95, doc="fraction of channels removed per layer"
        ),
        "importance": ParamDef(
            "choice", "l2", choices=IMPORTANCES, doc="how channels are ranked before removal"
        ),
        "global_pruning": ParamDef(
            "bool", False, doc="rank channels across layers instead of per layer"
        ),
        "round_to": ParamDef(
            "int", 1, low=1, high=128, doc="keep channel counts multiples of this (kernel-friendly)"
        ),
        "recovery_epochs": ParamDef(
            "int",
            0,
            low=0,
            high=50,
            doc="fine-tuning epochs on the task's training data afterwards",
        ),
    }

    def available(self) -> Availability:
        """Needs the torch-pruning package."""
        try:
            import torch_pruning  # noqa: F401
        except ImportError as e:
            return Availability(
                False, f"torch-pruning is not installed ({e}): pip install torch-pruning"
            )
        return Availability(True, "torch-pruning imports")

    def apply(self, model: nn.Module, params: Mapping[str, Any], ctx: CompressContext) -> nn.Module:
        """Prune ``model`` in place (it is a private copy) and return it."""
        import torch_pruning as tp

        ratio = float(params["ratio"])
        if ratio == 0.0:
            return model
        keep = output_layers(model, ctx.example_inputs)
        named = dict(model.named_modules())
        for name in ctx.keep_modules:
            if name not in named:
                raise VariantError(
                    f"keep_layers names '{name}', which is not a module of the model; "
                    f"modules are: {', '.join(n for n in named if n)[:300]}"
                )
            keep.append(named[name])
        round_to = int(params["round_to"])
        torch.manual_seed(ctx.seed)  # random importance and ties are reproducible
        try:
            pruner = tp.pruner.BasePruner(
                model,
                ctx.example_inputs,
                importance=_importance(str(params["importance"])),
                pruning_ratio=ratio,
                global_pruning=bool(params["global_pruning"]),
                ignored_layers=keep,
                round_to=round_to if round_to > 1 else None,
            )
            pruner.step()
        except Exception as e:  # torch-pruning raises plain exceptions on unsupported graphs
            raise VariantError(f"torch-pruning could not prune this model: {e}") from e
        epochs = int(params["recovery_epochs"])
        if epochs > 0:
            recover(model, ctx, epochs=epochs)
        return model


def recover(model: nn.Module, ctx: CompressContext, *, epochs: int, batch_size: int = 64) -> None:
    """Fine-tune a pruned model on the task's training data (recovers lost accuracy)."""
    if ctx.train_inputs is None or ctx.train_labels is None:
        raise VariantError(
            "recovery_epochs > 0 needs training data, and this task provides none: "
            "set recovery_epochs to 0 or return train_inputs/train_labels from the task"
        )
    x, y = ctx.train_inputs, ctx.train_labels
    gen = torch.Generator().manual_seed(ctx.seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    with torch.enable_grad():
        for _ in range(epochs):
            perm = torch.randperm(x.shape[0], generator=gen)
            for start in range(0, x.shape[0], batch_size):
                batch = perm[start : start + batch_size]
                opt.zero_grad()
                loss_fn(model(x[batch]), y[batch]).backward()
                opt.step()
    model.eval()
