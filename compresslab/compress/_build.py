"""Building a variant: the base model deep-copied, then each step applied in stage order."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from compresslab.compress._registry import get_method
from compresslab.compress.base import (
    NOTES_ATTR,
    STAGES,
    BuildTrace,
    CompressContext,
    StepRecord,
    VariantSpec,
    notes_of,
)
from compresslab.errors import VariantError


def build_variant(
    base: nn.Module,
    spec: VariantSpec,
    ctx: CompressContext,
    *,
    trace: BuildTrace | None = None,
) -> nn.Module:
    """A new model: ``base`` deep-copied, then each step applied in stage order.

    Building is deterministic: the same base, spec and context give the same weights (seeded
    from ``ctx.seed``; torch's global RNG is left as it was). The result carries the notes
    of every step in order (:func:`notes_of`), also when a step returns a new model.

    Args:
        base: the trained base model (never mutated).
        spec: the steps.
        ctx: example inputs, layers to keep, seed and training data.
        trace: when given, filled with each step's resolved parameters, pruning history and
            the float model before the quantize stage (what an export needs).

    Raises:
        VariantError: a step is out of order, unknown, or fails on this model.
    """
    # Pruning and recovery need autograd, also when the caller is in inference mode (a copy
    # made there would hold inference tensors that autograd refuses).
    with torch.inference_mode(False), torch.enable_grad():
        return _build(base, spec, ctx, trace)


def _build(
    base: nn.Module, spec: VariantSpec, ctx: CompressContext, trace: BuildTrace | None
) -> nn.Module:
    model = copy.deepcopy(base)
    model.eval()
    last_stage = -1
    for step in spec.steps:
        method = get_method(step.method)
        stage_index = STAGES.index(method.stage)
        if stage_index <= last_stage:
            raise VariantError(
                f"step '{step.method}' ({method.stage}) comes after a later or equal stage: "
                f"stages run in the order {' -> '.join(STAGES)}, one method each"
            )
        last_stage = stage_index
        params: Mapping[str, Any] = method.resolve(step.params)
        if trace is not None and method.stage == "quantize" and trace.float_model is None:
            trace.float_model = copy.deepcopy(model)
        earlier = notes_of(model)
        applied = method.apply_step(model, params, ctx)
        later = notes_of(applied.model)
        if later[: len(earlier)] != earlier:  # a new model (e.g. a wrapper) lost the notes
            setattr(applied.model, NOTES_ATTR, earlier + later)
        model = applied.model
        model.eval()
        if trace is not None:
            trace.steps.append(
                StepRecord(step.method, method.stage, dict(params), applied.pruning_history)
            )
    if trace is not None and trace.float_model is None:
        trace.float_model = model
    return model
