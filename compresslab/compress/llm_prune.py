"""Structured pruning of Llama-style decoders: key/value groups, MLP channels, whole blocks.

``prune_llm`` works on decoder blocks shaped like Hugging Face Llama's (``self_attn`` with
``q_proj``, ``k_proj``, ``v_proj``, ``o_proj``; ``mlp`` with ``gate_proj``, ``up_proj``,
``down_proj``), found by their attributes (Llama, SmolLM2, Mistral, Qwen2 ...). Three cuts,
in this order:

1. **Blocks** (``drop_blocks``): whole decoder blocks go, those whose output differs least
   from their input on calibration text ("block influence", 1 - cosine similarity, as in
   ShortGPT). Later blocks are renumbered (their KV-cache slot) and the config's layer count
   follows.
2. **Attention** (``head_ratio``): grouped-query attention shares each key/value head among
   several query heads, so heads go by whole **KV groups** (one key/value head and the query
   heads that read it): ``q_proj`` and ``o_proj`` lose the group's query heads, ``k_proj``
   and ``v_proj`` its key/value head; the query-per-key ratio stays what attention expects.
   Every block keeps at least one group.
3. **MLP** (``mlp_ratio``): intermediate channels go from ``gate_proj``/``up_proj`` (outputs)
   and ``down_proj`` (inputs) together.

Importance: ``activation`` (default) ranks a group or channel by what it adds to the block's
output on calibration text (the task's training inputs): a KV group by the norm of its part of
``o_proj``'s output, an MLP channel by its activation norm times its ``down_proj`` column norm
(Wanda-style); ``magnitude`` by the L2 norm of its weights in every layer it touches. The
channels are removed with torch-pruning's pruning functions; the removed indices are the
step's pruning history, which an export replays on a fresh copy of the base model.

No recovery fine-tuning is offered: a language model's recovery needs far more data and time
than one trial of a search has.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from compresslab.availability import Availability
from compresslab.compress.base import Applied, CompressContext, CompressionMethod, ParamDef
from compresslab.compress.decoder import (
    decoder_blocks,
    drop_blocks,
    group_dims,
    kv_groups,
    prune_linear,
    replay,
)
from compresslab.compress.llm_importance import calibrate, lowest, magnitude
from compresslab.errors import VariantError

__all__ = ["LlmPruning", "decoder_blocks", "replay"]

_INSTALL = "pip install 'torch-pruning>=1.6,<1.7'"


@functools.cache
def _available() -> Availability:
    try:
        import torch_pruning as tp
    except ImportError as e:
        return Availability(False, f"torch-pruning is not installed ({e}): {_INSTALL}")
    try:
        lin = nn.Linear(8, 6)
        tp.prune_linear_out_channels(lin, [0, 1])
        tp.prune_linear_in_channels(lin, [2])
        lin(torch.zeros(1, 7))
    except Exception as e:  # torch-pruning raises plain exceptions
        return Availability(False, f"torch-pruning cannot prune linear layers here ({e})")
    if lin.weight.shape != (4, 7):
        return Availability(False, "torch-pruning did not prune a linear layer as expected")
    return Availability(True, "torch-pruning's linear pruning functions ran here")


class LlmPruning(CompressionMethod):
    """Remove KV groups, MLP channels and whole blocks of a Llama-style decoder."""

    name = "prune_llm"
    stage = "prune"
    summary = "Llama-style decoders: whole KV groups, MLP channels, whole blocks (torch-pruning)"
    params: ClassVar[Mapping[str, ParamDef]] = {
        "head_ratio": ParamDef(
            "float",
            0.0,
            low=0.0,
            high=0.9,
            doc="fraction of each block's key/value groups removed (rounded to whole groups; "
            "at least one stays)",
        ),
        "mlp_ratio": ParamDef(
            "float", 0.0, low=0.0, high=0.95, doc="fraction of each block's MLP channels removed"
        ),
        "drop_blocks": ParamDef(
            "int", 0, low=0, high=64, doc="whole decoder blocks removed (least influence first)"
        ),
        "importance": ParamDef(
            "choice",
            "activation",
            choices=("activation", "magnitude"),
            doc="rank by contribution on calibration text, or by weight norms",
        ),
        "keep_ends": ParamDef(
            "int", 0, low=0, high=16, doc="the first and last this many blocks stay whole"
        ),
        "round_to": ParamDef(
            "int", 1, low=1, high=128, doc="keep MLP widths multiples of this (kernel-friendly)"
        ),
    }

    def available(self) -> Availability:
        """Needs torch-pruning (its linear pruning functions)."""
        return _available()

    def apply(self, model: nn.Module, params: Mapping[str, Any], ctx: CompressContext) -> nn.Module:
        """Prune ``model`` in place (it is a private copy) and return it."""
        return self.apply_step(model, params, ctx).model

    def apply_step(
        self, model: nn.Module, params: Mapping[str, Any], ctx: CompressContext
    ) -> Applied:
        """Drop blocks, then prune KV groups and MLP channels; report the history."""
        head_ratio = float(params["head_ratio"])
        mlp_ratio = float(params["mlp_ratio"])
        n_drop = int(params["drop_blocks"])
        keep_ends = int(params["keep_ends"])
        if head_ratio == 0 and mlp_ratio == 0 and n_drop == 0:
            return Applied(model, pruning_history=[])
        container, blocks = decoder_blocks(model)
        n = len(blocks)
        inner = list(range(keep_ends, n - keep_ends))
        if n_drop > len(inner) - (0 if keep_ends else 1):
            raise VariantError(
                f"drop_blocks {n_drop} leaves no block to keep among {len(inner)} that may go "
                f"({n} blocks, keep_ends {keep_ends}): lower drop_blocks"
            )
        activation = str(params["importance"]) == "activation"
        stats: dict[str, Any] = {}
        if activation or n_drop:
            if ctx.train_inputs is None:
                raise VariantError(
                    "prune_llm ranks by calibration text (importance activation, drop_blocks) "
                    "and this task has no training inputs: use importance: magnitude and "
                    "drop_blocks: 0, or return train_inputs from the task"
                )
            model.eval()
            stats = calibrate(model, blocks, ctx.train_inputs)
        history: list[list[Any]] = []
        dropped: list[int] = []
        if n_drop:
            influence = torch.tensor([stats["influence"][i] for i in inner])
            dropped = sorted(inner[i] for i in lowest(influence, n_drop))
            drop_blocks(model, container, dropped)
            history.append([container, False, dropped])
        pruned = model.get_submodule(container)
        assert isinstance(pruned, nn.ModuleList)
        originals = [i for i in range(n) if i not in set(dropped)]
        for new_i, old_i in enumerate(originals):
            if old_i < keep_ends or old_i >= n - keep_ends:
                continue
            block: Any = pruned[new_i]
            prefix = f"{container}.{new_i}"
            if activation:
                groups = stats["group_sq"][old_i].sqrt()
                chans = stats["chan_sq"][old_i].sqrt() * block.mlp.down_proj.weight.float().norm(
                    dim=0
                )
            else:
                groups, chans = magnitude(block)
            history += self._prune_block(model, prefix, block, groups, chans, params)
        return Applied(model, pruning_history=history)

    def _prune_block(
        self,
        model: nn.Module,
        prefix: str,
        block: Any,
        groups: torch.Tensor,
        chans: torch.Tensor,
        params: Mapping[str, Any],
    ) -> list[list[Any]]:
        out: list[list[Any]] = []
        kv, per, d = kv_groups(block.self_attn)
        n_groups = min(kv - 1, math.floor(float(params["head_ratio"]) * kv + 0.5))
        gone = lowest(groups, n_groups)
        if gone:
            q_idx = [i for g in gone for i in group_dims(g, per, d)]
            kv_idx = [i for g in gone for i in range(g * d, (g + 1) * d)]
            for layer, is_out, idxs in (
                ("q_proj", True, q_idx),
                ("k_proj", True, kv_idx),
                ("v_proj", True, kv_idx),
                ("o_proj", False, q_idx),
            ):
                prune_linear(model, f"{prefix}.self_attn.{layer}", is_out, idxs)
                out.append([f"{prefix}.self_attn.{layer}", is_out, idxs])
        width = block.mlp.gate_proj.out_features
        keep = width - math.floor(float(params["mlp_ratio"]) * width)
        r = int(params["round_to"])
        if r > 1:
            keep = min(width, max(r, round(keep / r) * r))
        chan_idx = lowest(chans, width - keep)
        if chan_idx:
            for layer, is_out in (("gate_proj", True), ("up_proj", True), ("down_proj", False)):
                prune_linear(model, f"{prefix}.mlp.{layer}", is_out, chan_idx)
                out.append([f"{prefix}.mlp.{layer}", is_out, chan_idx])
        return out

    def restore_structure(
        self,
        model: nn.Module,
        params: Mapping[str, Any],
        ctx: CompressContext,
        *,
        pruning_history: list[list[Any]] | None,
    ) -> nn.Module:
        """Replay the recorded history on a fresh copy of the base model."""
        return replay(model, pruning_history or [])
