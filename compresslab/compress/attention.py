"""Hugging Face BERT-style attention modules: found by their attributes, kept consistent."""

from __future__ import annotations

from typing import Any

from torch import nn

from compresslab.errors import VariantError


def attention_modules(model: nn.Module) -> list[nn.Module]:
    """Hugging Face BERT-style self-attention modules, found by their attributes.

    A module qualifies when it has ``query``, ``key`` and ``value`` linear layers and integer
    ``num_attention_heads`` and ``attention_head_size`` (``BertSelfAttention`` and its copies
    in RoBERTa, ELECTRA, MiniLM ...).
    """
    return [
        m
        for m in model.modules()
        if all(isinstance(getattr(m, a, None), nn.Linear) for a in ("query", "key", "value"))
        and isinstance(getattr(m, "num_attention_heads", None), int)
        and isinstance(getattr(m, "attention_head_size", None), int)
    ]


def ffn_input_layers(model: nn.Module) -> list[nn.Linear]:
    """The first linear layer of each transformer FFN (``layer.intermediate.dense``)."""
    out = []
    for m in model.modules():
        dense = getattr(getattr(m, "intermediate", None), "dense", None)
        if isinstance(dense, nn.Linear) and hasattr(m, "output"):
            out.append(dense)
    return out


def sync_attention_heads(model: nn.Module) -> None:
    """Set each attention module's head counts from its (pruned) projection widths.

    transformers reshapes queries with ``attention_head_size`` and keeps
    ``num_attention_heads`` and ``all_head_size`` as attributes; all three must agree with the
    ``query``/``key``/``value`` widths after heads are removed.

    Raises:
        VariantError: the widths are not whole heads, or a module lost every head.
    """
    for module in attention_modules(model):
        m: Any = module  # a transformers attention module: attributes checked above
        head = int(m.attention_head_size)
        widths = {m.query.out_features, m.key.out_features, m.value.out_features}
        width = int(next(iter(widths)))
        if len(widths) != 1 or width % head:
            raise VariantError(
                f"attention projections have widths {sorted(widths)}, not whole heads of "
                f"{head}: head pruning went wrong; report this with the model's config"
            )
        if width == 0:
            raise VariantError(
                "pruning removed every head of an attention layer: lower head_ratio, or use "
                "global_pruning: false (which keeps the same number of heads in every layer)"
            )
        m.num_attention_heads = width // head
        m.all_head_size = width
