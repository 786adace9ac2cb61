"""Unstructured magnitude sparsity: the smallest weights become zeros in dense tensors.

``torch.nn.utils.prune`` ranks the weights of every convolution and linear layer by magnitude
(per layer, or across layers) and zeroes the smallest; ``prune.remove`` then makes the zeros
permanent, so the result is a plain dense model. Dense kernels multiply zeros as fast as any
other number: MACs stay the same (the profile's ``sparsity`` shows the zeros) and the energy
measurement shows whether anything got cheaper. It is a stage of its own, between pruning and
quantization, so it composes with both.

The classifier and the task's ``keep_layers`` are left dense. Optional recovery fine-tunes
with the masks in place (zeros stay zeros), then the masks are removed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from torch import nn
from torch.nn.utils import prune as torch_prune

from compresslab.availability import Availability
from compresslab.compress.base import CompressContext, CompressionMethod, ParamDef
from compresslab.compress.layers import named_keep_modules, output_layers
from compresslab.compress.recovery import (
    RECOVERY_PARAMS,
    recover,
    recovery_applicable,
    recovery_teacher,
)
from compresslab.errors import VariantError

_WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


class MagnitudeSparsity(CompressionMethod):
    """Zero the smallest-magnitude weights (L1 unstructured), then make them permanent."""

    name = "sparsity"
    stage = "sparsify"
    summary = "unstructured magnitude sparsity (zeros in dense weights; MACs unchanged)"
    params: ClassVar[Mapping[str, ParamDef]] = {
        "amount": ParamDef("float", 0.5, low=0.0, high=0.99, doc="fraction of weights set to zero"),
        "global_pruning": ParamDef(
            "bool", False, doc="rank weights across layers instead of within each layer"
        ),
        **RECOVERY_PARAMS,
        "recovery_lr": ParamDef(
            "float", 1e-3, low=1e-6, high=0.1, doc="Adam learning rate of the recovery"
        ),
    }

    def applicable(
        self, model: nn.Module, params: Mapping[str, Any], ctx: CompressContext
    ) -> Availability:
        """Recovery fine-tuning needs the task's training data."""
        return recovery_applicable(params, ctx)

    def apply(self, model: nn.Module, params: Mapping[str, Any], ctx: CompressContext) -> nn.Module:
        """Zero weights in place (``model`` is a private copy) and return it."""
        amount = float(params["amount"])
        if amount == 0.0:
            return model
        epochs = int(params["recovery_epochs"])
        distill = float(params["distill"])
        teacher = recovery_teacher(model, params, ctx)
        keep = {id(m) for m in output_layers(model, ctx.example_inputs)}
        keep |= {id(m) for m in named_keep_modules(model, ctx.keep_modules)}
        layers = [
            m
            for m in model.modules()
            if isinstance(m, _WEIGHTED)
            and id(m) not in keep
            and isinstance(getattr(m, "weight", None), nn.Parameter)
        ]
        if not layers:
            raise VariantError(
                "sparsity found no convolution or linear layer to sparsify besides the classifier "
                "and keep_layers"
            )
        if bool(params["global_pruning"]):
            torch_prune.global_unstructured(
                [(m, "weight") for m in layers],
                pruning_method=torch_prune.L1Unstructured,
                amount=amount,
            )
        else:
            for m in layers:
                torch_prune.l1_unstructured(m, "weight", amount=amount)
        if epochs > 0:
            recover(
                model,
                ctx,
                epochs=epochs,
                lr=float(params["recovery_lr"]),
                teacher=teacher,
                distill=distill,
            )
        for m in layers:
            torch_prune.remove(m, "weight")
        return model
