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


def linear_targets(
    model: nn.Module, ctx: CompressContext, *, keep_classifier: bool
) -> list[tuple[str, nn.Linear]]:
    """The plain ``nn.Linear`` layers to quantize, by name (kept layers left out).

    Raises:
        VariantError: a ``keep_layers`` name is wrong, or nothing is left to quantize.
    """
    keep: set[int] = {id(m) for m in named_keep_modules(model, ctx.keep_modules)}
    if keep_classifier:
        keep |= {id(m) for m in output_layers(model, ctx.example_inputs)}
    out = [
        (name, m) for name, m in model.named_modules() if type(m) is nn.Linear and id(m) not in keep
    ]
    if not out:
        raise VariantError(
            "found no nn.Linear layer to quantize in this model (the classifier and keep_layers "
            "are left in float32; set keep_classifier: false to quantize the classifier too)"
        )
    return out
