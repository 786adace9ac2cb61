"""Installed versions of the libraries that decide a variant and its figures (no imports)."""

from __future__ import annotations

import importlib.metadata
import platform

#: Distributions whose versions every study, export and baseline records.
DISTRIBUTIONS = (
    "compresslab",
    "torch",
    "optuna",
    "torch-pruning",
    "bitsandbytes",
    "torchao",
    "transformers",
    "safetensors",
)


def version_of(dist: str) -> str | None:
    """The installed version of distribution ``dist`` (None: not installed); never imports it."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    """Python's version and each of :data:`DISTRIBUTIONS` (None: not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    out.update({dist: version_of(dist) for dist in DISTRIBUTIONS})
    return out
