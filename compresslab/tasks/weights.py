"""Loading trained weights from a file into a user's model (for entrypoint providers)."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import torch
from torch import nn

from compresslab.errors import TaskError

#: File suffixes read with ``torch.load(weights_only=True)``.
TORCH_SUFFIXES: tuple[str, ...] = (".pt", ".pth", ".bin", ".ckpt")


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path), device="cpu"))
        except (SafetensorError, OSError) as e:
            raise TaskError(
                f"cannot read {path} as safetensors ({e}): the file is corrupt or not "
                "safetensors; write it with `safetensors.torch.save_file(model.state_dict(), path)`"
            ) from e
    if path.suffix in TORCH_SUFFIXES:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            if "Unsupported global" in str(e):
                raise TaskError(
                    f"{path} holds more than tensors (a pickled model object?), which is not "
                    "loaded because unpickling runs code: save `model.state_dict()` instead, "
                    "or convert it to .safetensors"
                ) from e
            raise TaskError(
                f"cannot read {path} with torch.load: the file is corrupt or not a torch "
                "checkpoint; save it with `torch.save(model.state_dict(), path)`"
            ) from e
        except (OSError, RuntimeError, EOFError, ValueError, struct.error) as e:
            raise TaskError(
                f"cannot read {path} with torch.load ({e}): the file is corrupt or not a "
                "torch checkpoint"
            ) from e
        # Training checkpoints often wrap the weights: {"state_dict": {...}, "epoch": ...}.
        for wrapper in ("state_dict", "model_state_dict", "model"):
            if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
                state = state[wrapper]
                break
        if not isinstance(state, dict) or not all(
            isinstance(v, torch.Tensor) for v in state.values()
        ):
            raise TaskError(
                f"{path} does not hold a state dict of tensors (found {type(state).__name__}): "
                "save it with `torch.save(model.state_dict(), path)`"
            )
        return state
    raise TaskError(
        f"unknown weights format '{path.suffix or path.name}': use .safetensors or one of "
        f"{', '.join(TORCH_SUFFIXES)} (a state dict saved with torch.save)"
    )


def load_weights(model: nn.Module, path: str | Path, *, strict: bool = True) -> nn.Module:
    """Load a state dict from ``path`` into ``model`` and return it in eval mode.

    ``.safetensors`` files are read with safetensors; ``.pt``, ``.pth``, ``.bin`` and ``.ckpt``
    with ``torch.load(weights_only=True)``, which never runs pickled code (a checkpoint that
    wraps the weights in ``{"state_dict": ...}`` is unwrapped).

    Args:
        model: the model, built with the architecture the weights were saved from.
        path: the weights file.
        strict: every key of the model must be in the file and vice versa.

    Returns:
        ``model``, with the weights loaded, in eval mode.

    Raises:
        TaskError: the file is missing, of an unknown format, corrupt, or does not fit the
            model (the message lists missing, unexpected or mis-shaped keys).
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise TaskError(f"no weights file at {p}: check the path (relative to {Path.cwd()})")
    state = _read_state(p)
    own = model.state_dict()
    shapes = [
        f"{k} {tuple(v.shape)} in the file, {tuple(own[k].shape)} in the model"
        for k, v in state.items()
        if k in own and own[k].shape != v.shape
    ]
    if shapes:
        raise TaskError(
            f"the weights in {p} do not fit the model: {'; '.join(shapes[:5])}"
            f"{' ...' if len(shapes) > 5 else ''}; build the model with the same sizes"
        )
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if strict and (missing or unexpected):
        parts = []
        if missing:
            parts.append(f"missing from the file: {', '.join(missing[:5])}")
        if unexpected:
            parts.append(f"not in the model: {', '.join(unexpected[:5])}")
        hint = ""
        if any(k.startswith("module.") for k in unexpected):
            hint = " (keys start with 'module.': strip the DataParallel prefix)"
        raise TaskError(
            f"the weights in {p} do not match the model's keys ({'; '.join(parts)}){hint}: "
            "build the same architecture, or pass strict=False to load the overlap"
        )
    model.load_state_dict(state, strict=strict)
    model.eval()
    return model
