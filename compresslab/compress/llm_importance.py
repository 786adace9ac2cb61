"""How much each KV group, MLP channel and block of a Llama-style decoder matters.

``activation`` ranks by what a part adds to its block's output on calibration text
(:func:`calibrate`); ``magnitude`` by the L2 norm of its weights (:func:`magnitude`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from compresslab.compress.decoder import group_dims, kv_groups

#: Calibration texts per forward pass.
_CALIBRATION_BATCH = 8


@torch.no_grad()
def calibrate(model: nn.Module, blocks: nn.ModuleList, inputs: torch.Tensor) -> dict[str, Any]:
    """Per block: what each KV group and MLP channel adds, and the block's influence."""
    n = len(blocks)
    group_sq: list[torch.Tensor | None] = [None] * n
    chan_sq: list[torch.Tensor | None] = [None] * n
    influence = [0.0] * n
    tokens = [0]
    real: list[torch.Tensor] = []  # the current batch's real (not padding) positions
    hooks = []

    def on_o(i: int, attn: Any) -> Any:
        kv, per, d = kv_groups(attn)

        def hook(_m: nn.Module, args: tuple[Any, ...]) -> None:
            x = args[0][real[0]].float()  # tokens x (heads * d)
            w = attn.o_proj.weight.float()
            sq = torch.stack(
                [
                    ((x[:, dims] @ w[:, dims].T) ** 2).sum()
                    for dims in (group_dims(g, per, d) for g in range(kv))
                ]
            )
            prev = group_sq[i]
            group_sq[i] = sq if prev is None else prev + sq

        return hook

    def on_down(i: int) -> Any:
        def hook(_m: nn.Module, args: tuple[Any, ...]) -> None:
            sq = (args[0][real[0]].float() ** 2).sum(dim=0)
            prev = chan_sq[i]
            chan_sq[i] = sq if prev is None else prev + sq

        return hook

    def on_block(i: int) -> Any:
        def hook(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
            h_in = (args[0] if args else kwargs["hidden_states"])[real[0]].float()
            h_out = (out[0] if isinstance(out, tuple) else out)[real[0]].float()
            influence[i] += float((1 - torch.cosine_similarity(h_in, h_out, dim=-1)).sum())

        return hook

    for i, block in enumerate(blocks):
        attn: Any = block.self_attn
        mlp: Any = block.mlp
        hooks.append(attn.o_proj.register_forward_pre_hook(on_o(i, attn)))
        hooks.append(mlp.down_proj.register_forward_pre_hook(on_down(i)))
        hooks.append(block.register_forward_hook(on_block(i), with_kwargs=True))
    try:
        for start in range(0, inputs.shape[0], _CALIBRATION_BATCH):
            batch = inputs[start : start + _CALIBRATION_BATCH]
            # Token ids below zero are padding (the causal tasks' convention): not counted.
            mask = (
                batch >= 0
                if not batch.is_floating_point()
                else torch.ones_like(batch, dtype=torch.bool)
            )
            real[:] = [mask]
            tokens[0] += int(mask.sum())
            model(batch)
    finally:
        for h in hooks:
            h.remove()
    return {
        "group_sq": group_sq,
        "chan_sq": chan_sq,
        "influence": [v / max(tokens[0], 1) for v in influence],
    }


def magnitude(block: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Group L2 importance of each KV group and each MLP channel from the weights alone."""
    attn, mlp = block.self_attn, block.mlp
    kv, per, d = kv_groups(attn)
    q_rows = attn.q_proj.weight.float().pow(2).sum(dim=1)
    k_rows = attn.k_proj.weight.float().pow(2).sum(dim=1) + attn.v_proj.weight.float().pow(2).sum(
        dim=1
    )
    o_cols = attn.o_proj.weight.float().pow(2).sum(dim=0)
    groups = torch.stack(
        [
            q_rows[group_dims(g, per, d)].sum()
            + o_cols[group_dims(g, per, d)].sum()
            + k_rows[g * d : (g + 1) * d].sum()
            for g in range(kv)
        ]
    )
    chans = (
        mlp.gate_proj.weight.float().pow(2).sum(dim=1)
        + mlp.up_proj.weight.float().pow(2).sum(dim=1)
        + mlp.down_proj.weight.float().pow(2).sum(dim=0)
    )
    return groups, chans


def lowest(scores: torch.Tensor, k: int) -> list[int]:
    """Indices of the ``k`` lowest scores, ascending by index (ties: the lower index goes)."""
    if k <= 0:
        return []
    order = torch.argsort(scores.double(), stable=True)
    return sorted(int(i) for i in order[:k])
