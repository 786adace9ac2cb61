from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Trained models and the measurement lock live in a per-session folder."""
    cache = tmp_path_factory.mktemp("cache")
    os.environ["COMPRESSLAB_CACHE_DIR"] = str(cache)
    os.environ["COMPRESSLAB_LOCK_DIR"] = str(cache)


@pytest.fixture(scope="session")
def digits_task():  # type: ignore[no-untyped-def]
    """The real digits task (the CNN is trained once per test session)."""
    from compresslab.tasks.digits import digits_task as build

    return build({})


FAST_ENERGY = {
    "sampler": "estimate",
    "batch_size": 32,
    "warmup_s": 0.0,
    "window_s": 0.05,
    "min_windows": 2,
    "max_windows": 2,
}


@pytest.fixture
def repo() -> Path:
    """The repository root (recipes/ lives there)."""
    return REPO


@pytest.fixture
def small_recipe(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A factory of digits recipes (dicts) that search in seconds, writing under ``tmp_path``."""
    return lambda **overrides: _small_recipe(tmp_path, **overrides)


def _small_recipe(tmp_path: Path, **overrides: object) -> dict[str, object]:
    recipe: dict[str, object] = {
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
