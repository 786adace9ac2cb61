"""A small on-disk cache for trained base models (state dicts, loaded with weights_only)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from compresslab.fsio import atomic_write


def cache_dir() -> Path:
    """``$COMPRESSLAB_CACHE_DIR``, else ``$XDG_CACHE_HOME/compresslab``, else ``~/.cache/...``."""
    env = os.environ.get("COMPRESSLAB_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "compresslab"


def cache_key(name: str, config: dict[str, Any]) -> str:
    """A file stem that changes whenever the training configuration changes."""
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]
    return f"{name}-{digest}"


def load_state(key: str) -> dict[str, torch.Tensor] | None:
    """The cached state dict for ``key``, or None (also when the file is unreadable)."""
    path = cache_dir() / f"{key}.pt"
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a corrupt cache entry is retrained, not fatal
        return None
    return state if isinstance(state, dict) else None


def save_state(key: str, state: dict[str, torch.Tensor]) -> Path:
    """Write a state dict atomically (a kill never leaves half a file)."""
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{key}.pt"
    atomic_write(path, lambda tmp: torch.save(state, tmp))
    return path
