from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
# Shared helpers (tests_support.py) import as a plain module under --import-mode=importlib.
sys.path.insert(0, str(Path(__file__).resolve().parent))


# One intra-op thread per test process: on a 2-core runner, subprocess workers and the test
# process would otherwise oversubscribe the cores (tiny-model training gets ~20x slower).
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)


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
