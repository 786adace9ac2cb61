"""Structured pruning with torch-pruning: whole channels or attention heads go, so MACs drop.

Two methods share the machinery of :mod:`.structured` (and :mod:`.attention`):

- ``prune_channels``: a fraction of the output channels of every prunable layer (convolutions,
  linear layers), ranked by an importance criterion.
- ``prune_heads``: whole attention heads and FFN intermediate width of Hugging Face BERT-style
  encoders (BERT, RoBERTa, MiniLM ...), with the attention modules' head counts updated so the
  model keeps working.

What is never pruned: the classifier (every layer whose output has the model's output shape,
found automatically), the modules the task names in ``keep_layers``, and embeddings (in a
transformer their width is the residual width shared by every layer). ``prune_channels`` also
keeps attention projections whole: removing single channels from them would break the head
layout; ``prune_heads`` is the method for attention.

Optional recovery fine-tunes on the task's training data afterwards, optionally distilling from
the unpruned model. Every step reports torch-pruning's pruning history, from which an export
rebuilds the pruned shapes (:meth:`CompressionMethod.restore_structure`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any, ClassVar

from torch import nn

from compresslab.availability import Availability
from compresslab.compress.attention import (
    attention_modules,
    ffn_input_layers,
    sync_attention_heads,
)
from compresslab.compress.base import CompressContext, ParamDef
from compresslab.compress.recovery import RECOVERY_PARAMS
from compresslab.compress.structured import (
    IMPORTANCES,
    StructuredPruning,
    make_importance,
    torch_pruning_available,
)
from compresslab.errors import VariantError

log = logging.getLogger(__name__)


class ChannelPruning(StructuredPruning):
    """Remove a fraction of channels from every prunable layer, ranked by an importance."""

    name = "prune_channels"
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
        "iterative_steps": ParamDef(
            "int",
            1,
            low=1,
            high=20,
            doc="reach the ratio in this many steps (importance re-ranked, recovery after each)",
        ),
        **RECOVERY_PARAMS,
        "recovery_lr": ParamDef(
            "float", 1e-3, low=1e-6, high=0.1, doc="Adam learning rate of the recovery"
        ),
    }

    def _nothing_to_do(self, params: Mapping[str, Any]) -> bool:
        return float(params["ratio"]) == 0.0

    def _make_pruner(
        self,
        model: nn.Module,
        params: Mapping[str, Any],
        ctx: CompressContext,
        keep: list[nn.Module],
    ) -> Any:
        import torch_pruning as tp

        # Single channels of q/k/v cannot go without breaking the head layout: prune_heads.
        attns = attention_modules(model)
        for attn in attns:
            keep += [attn.query, attn.key, attn.value]  # type: ignore[list-item]
        if attns:
            log.info(
                "prune_channels keeps the %d attention modules whole (use prune_heads for heads)",
                len(attns),
            )
        round_to = int(params["round_to"])
        return tp.pruner.BasePruner(
            model,
            ctx.example_inputs,
            importance=make_importance(str(params["importance"])),
            pruning_ratio=float(params["ratio"]),
            global_pruning=bool(params["global_pruning"]),
            iterative_steps=int(params["iterative_steps"]),
            ignored_layers=keep,
            round_to=round_to if round_to > 1 else None,
        )


class HeadPruning(StructuredPruning):
    """Remove whole attention heads and FFN width from a BERT-style encoder."""

    name = "prune_heads"
    summary = "attention-head and FFN-width pruning of BERT-style encoders (torch-pruning)"
    params: ClassVar[Mapping[str, ParamDef]] = {
        "head_ratio": ParamDef(
            "float", 0.25, low=0.0, high=0.9, doc="fraction of attention heads removed per layer"
        ),
        "ffn_ratio": ParamDef(
            "float", 0.25, low=0.0, high=0.95, doc="fraction of FFN intermediate width removed"
        ),
        "importance": ParamDef(
            "choice", "l2", choices=IMPORTANCES, doc="how heads and FFN units are ranked"
        ),
        "global_pruning": ParamDef(
            "bool", False, doc="rank heads (and FFN units) across layers instead of per layer"
        ),
        "round_to": ParamDef(
            "int", 1, low=1, high=128, doc="keep FFN widths multiples of this (kernel-friendly)"
        ),
        "iterative_steps": ParamDef(
            "int",
            1,
            low=1,
            high=20,
            doc="reach the ratios in this many steps (importance re-ranked, recovery after each)",
        ),
        **RECOVERY_PARAMS,
        "recovery_lr": ParamDef(
            "float", 5e-5, low=1e-6, high=0.1, doc="Adam learning rate of the recovery"
        ),
    }

    def available(self) -> Availability:
        """Needs torch-pruning (transformers is only needed by the model itself)."""
        return torch_pruning_available()

    def applicable(
        self, model: nn.Module, params: Mapping[str, Any], ctx: CompressContext
    ) -> Availability:
        """Needs BERT-style attention modules (and what every structured pruning needs)."""
        if not attention_modules(model):
            return Availability(
                False,
                f"prune_heads needs a BERT-style encoder (attention modules with query, key, "
                f"value and num_attention_heads) and found none in {type(model).__name__}: "
                "use prune_channels",
            )
        return super().applicable(model, params, ctx)

    def _nothing_to_do(self, params: Mapping[str, Any]) -> bool:
        return float(params["head_ratio"]) == 0.0 and float(params["ffn_ratio"]) == 0.0

    def _after_step(self, model: nn.Module) -> None:
        sync_attention_heads(model)

    def _make_pruner(
        self,
        model: nn.Module,
        params: Mapping[str, Any],
        ctx: CompressContext,
        keep: list[nn.Module],
    ) -> Any:
        import torch_pruning as tp

        attns = attention_modules(model)
        if not attns:
            raise VariantError(
                "prune_heads needs a BERT-style encoder (attention modules with query, key, value "
                "and num_attention_heads) and found none in this model: use prune_channels"
            )
        head_ratio = float(params["head_ratio"])
        ffn_ratio = float(params["ffn_ratio"])
        steps = int(params["iterative_steps"])
        glob = bool(params["global_pruning"])
        num_heads: dict[nn.Module, int] = {}
        ratios: dict[Any, float] = {}
        for a in attns:
            n = int(a.num_attention_heads)  # type: ignore[arg-type]
            if not glob and _ceil(head_ratio * n) >= n:
                raise VariantError(
                    f"head_ratio {head_ratio:g} removes all {n} heads of every layer: use a "
                    f"head_ratio below {(n - 1) / n:.3g}"
                )
            for lin in (a.query, a.key, a.value):
                num_heads[lin] = n  # type: ignore[index]
            # A width ratio > 0 lets torch-pruning visit the group; only whole heads go
            # (prune_head_dims=False), as many as head_ratio says.
            ratios[(a.query, a.key, a.value)] = head_ratio
        for dense in ffn_input_layers(model):
            ratios[dense] = ffn_ratio
        # Every other linear layer keeps its outputs: the hidden (residual) width, the pooler
        # and the classifier stay whole.
        others = [
            m
            for m in model.modules()
            if isinstance(m, nn.Linear) and m not in num_heads and m not in ratios
        ]
        round_to = int(params["round_to"])
        pruner = tp.pruner.BasePruner(
            model,
            ctx.example_inputs,
            importance=make_importance(str(params["importance"])),
            pruning_ratio=0.0,
            pruning_ratio_dict=ratios,
            global_pruning=glob,
            iterative_steps=steps,
            ignored_layers=keep + others,
            round_to=round_to if round_to > 1 else None,
            num_heads=num_heads,
            prune_num_heads=head_ratio > 0,
            prune_head_dims=False,
            head_pruning_ratio=head_ratio,
        )
        if not glob and steps > 1 and head_ratio > 0:
            # torch-pruning 1.6 removes ceil(step ratio x *current* heads) per layer at each
            # step, which compounds (4 heads, 0.5, 2 steps: 3 removed). Ratios relative to the
            # heads left give the one-shot count, ceil(head_ratio x heads), spread over steps.
            n = int(attns[0].num_attention_heads)  # type: ignore[arg-type]
            pruner.per_step_head_pruning_ratio = _head_schedule(head_ratio, steps, n)
        return pruner


def _ceil(x: float) -> int:
    return math.ceil(x - 1e-9)


def _head_schedule(ratio: float, steps: int, heads: int) -> list[float]:
    """Per-step head ratios, relative to the heads left, that remove ceil(ratio x heads)."""
    out = [0.0]
    removed = 0
    for k in range(1, steps + 1):
        target = _ceil(ratio * k / steps * heads)
        now = target - removed
        left = heads - removed
        out.append((now - 0.5) / left if now > 0 else 0.0)
        removed = target
    return out
