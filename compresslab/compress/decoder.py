"""Llama-style decoder blocks: found by their attributes, cut into, and cut again on replay.

A block is shaped like Hugging Face Llama's (``self_attn`` with ``q_proj``, ``k_proj``,
``v_proj``, ``o_proj``; ``mlp`` with ``gate_proj``, ``up_proj``, ``down_proj``). Grouped-query
attention shares each key/value head among several query heads: a **KV group** is one
key/value head and the query heads that read it (:func:`kv_groups`, :func:`group_dims`).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from compresslab.errors import VariantError

_ATTN = ("q_proj", "k_proj", "v_proj", "o_proj")
_MLP = ("gate_proj", "up_proj", "down_proj")


def _is_decoder_block(m: nn.Module) -> bool:
    attn, mlp = getattr(m, "self_attn", None), getattr(m, "mlp", None)
    return all(isinstance(getattr(attn, a, None), nn.Linear) for a in _ATTN) and all(
        isinstance(getattr(mlp, a, None), nn.Linear) for a in _MLP
    )


def decoder_blocks(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The name and the list of a model's Llama-style decoder blocks.

    Raises:
        VariantError: the model has none.
    """
    for name, module in model.named_modules():
        if (
            isinstance(module, nn.ModuleList)
            and len(module)
            and all(map(_is_decoder_block, module))
        ):
            return name, module
    raise VariantError(
        "prune_llm needs Llama-style decoder blocks (self_attn with q/k/v/o_proj, mlp with "
        "gate/up/down_proj) and found none in this model: use prune_channels or prune_heads"
    )


def _head_dim(attn: nn.Module) -> int:
    head = getattr(attn, "head_dim", None)
    if isinstance(head, int) and head > 0:
        return head
    raise VariantError("an attention module has no integer head_dim: cannot find whole heads")


def kv_groups(attn: Any) -> tuple[int, int, int]:
    """(key/value groups, query heads per group, head dimension) of an attention module."""
    d = _head_dim(attn)
    kv = attn.k_proj.out_features // d
    q = attn.q_proj.out_features // d
    if kv < 1 or q % kv or attn.k_proj.out_features % d:
        raise VariantError(f"attention widths q {q * d}, kv {kv * d} are not whole heads of {d}")
    return kv, q // kv, d


def group_dims(g: int, per_group: int, d: int) -> list[int]:
    """The query dimensions of KV group ``g`` (``per_group`` heads of ``d`` dimensions each)."""
    return list(range(g * per_group * d, (g + 1) * per_group * d))


def drop_blocks(model: nn.Module, container: str, dropped: list[int]) -> None:
    """Remove blocks ``dropped`` from the list ``container``; renumber and resize the config."""
    blocks = model.get_submodule(container)
    assert isinstance(blocks, nn.ModuleList)
    kept = [b for i, b in enumerate(blocks) if i not in set(dropped)]
    if not kept:
        raise VariantError("drop_blocks removes every block: lower drop_blocks")
    for i, block in enumerate(kept):
        attn: Any = block.self_attn
        if hasattr(attn, "layer_idx"):
            attn.layer_idx = i  # the block's slot in the KV cache
    parent_name, _, child = container.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, nn.ModuleList(kept))
    config = getattr(kept[0].self_attn, "config", None)
    if config is not None:
        # transformers runs `layers[: config.num_hidden_layers]` and sizes caches from it.
        config.num_hidden_layers = len(kept)
        types = getattr(config, "layer_types", None)
        if isinstance(types, list) and len(types) == len(blocks):
            config.layer_types = [t for i, t in enumerate(types) if i not in set(dropped)]


def prune_linear(model: nn.Module, name: str, out: bool, idxs: list[int]) -> None:
    """Remove the output (``out``) or input channels ``idxs`` of the linear layer ``name``."""
    import torch_pruning as tp

    layer = model.get_submodule(name)
    if out:
        tp.prune_linear_out_channels(layer, idxs)
    else:
        tp.prune_linear_in_channels(layer, idxs)


def replay(model: nn.Module, history: list[list[Any]]) -> nn.Module:
    """Redo a ``prune_llm`` history on a fresh copy of the unpruned model (in place).

    Raises:
        VariantError: the history names modules the model does not have.
    """
    for name, out, idxs in history:
        try:
            module = model.get_submodule(str(name))
        except AttributeError as e:
            raise VariantError(
                f"cannot replay the pruning history: the model has no module {name} ({e}); the "
                "artefact was made from a different base model"
            ) from e
        if isinstance(module, nn.ModuleList):
            drop_blocks(model, str(name), [int(i) for i in idxs])
        else:
            prune_linear(model, str(name), bool(out), [int(i) for i in idxs])
    return model
