from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Shared helpers (tests_support.py) import as a plain module under --import-mode=importlib.
sys.path.insert(0, str(Path(__file__).resolve().parent))


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


@pytest.fixture
def repo() -> Path:
    """The repository root (recipes/ lives there)."""
    return REPO
