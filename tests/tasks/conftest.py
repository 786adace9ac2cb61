"""Fixtures for the task providers: the real MiniLM and real data, on small subsets."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# task_data.py (helpers shared by these tests) imports as a plain module.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from task_data import MINILM_SMALL, require_minilm, require_wordnet  # noqa: E402


@pytest.fixture(scope="session")
def minilm_small():  # type: ignore[no-untyped-def]
    """The real MiniLM + WordNet task on small options (the head is fitted once)."""
    require_wordnet()
    require_minilm()
    from compresslab.tasks.minilm import minilm_wordnet_task

    return minilm_wordnet_task(dict(MINILM_SMALL))


@pytest.fixture(scope="session")
def minilm_tokenizer():  # type: ignore[no-untyped-def]
    """The MiniLM's tokenizer (a real BERT WordPiece vocabulary, pad id 0)."""
    path = require_minilm()
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
