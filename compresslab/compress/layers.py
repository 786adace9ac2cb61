"""Which layers a method may touch: the classifier, the task's ``keep_layers``, linear targets.

Shared by every method that must leave some layers alone (pruning, sparsity, quantization), so
that no method module imports another.
"""

from __future__ import annotations

import torch
from torch import nn

from compresslab.compress.base import CompressContext
from compresslab.errors import VariantError


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


def named_keep_modules(model: nn.Module, names: tuple[str, ...]) -> list[nn.Module]:
    """The modules named in ``keep_layers``.

    Raises:
        VariantError: a name is not a module of ``model``.
    """
    named = dict(model.named_modules())
    out = []
    for name in names:
        if name not in named:
            raise VariantError(
                f"keep_layers names '{name}', which is not a module of the model; "
                f"modules are: {', '.join(n for n in named if n)[:300]}"
            )
        out.append(named[name])
    return out


#: Which linear layers of a transformer a method may select (see :func:`linear_kind`).
LAYER_KINDS = ("all", "attention", "mlp")


def transformer_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The repeated blocks of a transformer, by name, in order (empty for other models).

    The longest ``nn.ModuleList`` of at least two modules that each hold a linear layer
    (``model.layers`` of a Llama, ``encoder.layer`` of a BERT ...).
    """
    best: list[tuple[str, nn.Module]] = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) < 2 or len(module) <= len(best):
            continue
        if all(any(isinstance(c, nn.Linear) for c in block.modules()) for block in module):
            best = [(f"{name}.{i}" if name else str(i), block) for i, block in enumerate(module)]
    return best


def linear_kind(name: str, block: str | None) -> str:
    """What a linear layer is: ``attention``, ``mlp`` or ``other`` (outside every block).

    Inside transformer block ``block``, a layer is attention when a part of its name below
    the block says so (``self_attn``, ``attention``), and feed-forward (``mlp``) otherwise.
    """
    if block is None:
        return "other"
    below = name[len(block) + 1 :].split(".")
    return "attention" if any("attn" in p or "attention" in p for p in below) else "mlp"


def linear_targets(
    model: nn.Module,
    ctx: CompressContext,
    *,
    keep_classifier: bool,
    layers: str = "all",
    keep_ends: int = 0,
) -> list[tuple[str, nn.Linear]]:
    """The plain ``nn.Linear`` layers to quantize, by name (kept layers left out).

    Args:
        model: the model.
        ctx: its example inputs and ``keep_layers``.
        keep_classifier: leave the output layer (a language model's ``lm_head``) alone.
        layers: ``all``, or only a transformer's ``attention`` or ``mlp`` layers
            (:func:`linear_kind`).
        keep_ends: leave the layers of the first and the last ``keep_ends`` transformer
            blocks alone.

    Raises:
        VariantError: a ``keep_layers`` name is wrong, ``layers``/``keep_ends`` ask for
            transformer blocks the model does not have, or nothing is left to quantize.
    """
    keep: set[int] = {id(m) for m in named_keep_modules(model, ctx.keep_modules)}
    if keep_classifier:
        keep |= {id(m) for m in output_layers(model, ctx.example_inputs)}
    blocks = transformer_blocks(model) if layers != "all" or keep_ends > 0 else []
    if (layers != "all" or keep_ends > 0) and not blocks:
        raise VariantError(
            f"layers={layers} / keep_ends={keep_ends} select layers of transformer blocks, and "
            "this model has none (no list of repeated blocks): use layers: all, keep_ends: 0"
        )
    ends = (
        {n for n, _ in blocks[:keep_ends] + blocks[len(blocks) - keep_ends :]}
        if keep_ends
        else set()
    )

    def wanted(name: str) -> bool:
        block = next((b for b, _ in blocks if name.startswith(b + ".")), None)
        if block in ends:
            return False
        return layers == "all" or linear_kind(name, block) == layers

    out = [
        (name, m)
        for name, m in model.named_modules()
        if type(m) is nn.Linear and id(m) not in keep and wanted(name)
    ]
    if not out:
        raise VariantError(
            "found no nn.Linear layer to quantize in this model (the classifier and keep_layers "
            "are left in float32; set keep_classifier: false to quantize the classifier too)"
        )
    return out
