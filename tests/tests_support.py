"""Helpers shared by tests (imported as a plain module; pytest puts tests/ on sys.path)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

FAST_ENERGY = {
    "sampler": "estimate",
    "batch_size": 32,
    "warmup_s": 0.0,
    "window_s": 0.05,
    "min_windows": 2,
    "max_windows": 2,
}


def small(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    """A digits recipe (as a dict) that searches in seconds and writes under ``tmp_path``."""
    recipe: dict[str, Any] = {
        "name": "small",
        "task": {"name": "digits"},
        "compression": [
            {
                "method": "prune_channels",
                "params": {"ratio": {"low": 0.1, "high": 0.6, "step": 0.1}},
            },
            {"method": "dynamic_int8"},
        ],
        "energy": dict(FAST_ENERGY),
        "search": {"trials": 5, "sampler": "random", "seed": 1},
        "output": str(tmp_path / "reports"),
    }
    recipe.update(overrides)
    return recipe
