from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from compresslab.compress import CompressContext
from compresslab.tasks.text import MeanPoolClassifier


@dataclass(frozen=True)
class TinyBert:
    model: nn.Module
    ctx: CompressContext
    inputs: torch.Tensor


def make_tiny_bert(*, heads: int = 4, seed: int = 0) -> TinyBert:
    """A randomly initialised 2-layer BERT (hidden 32, FFN 64) and padded id batches."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=64,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=heads,
        intermediate_size=64,
        max_position_embeddings=16,
    )
    # The text tasks' own wrapper: forward(input_ids), mask derived from the pad id 0.
    model = MeanPoolClassifier(BertModel(config), nn.Linear(32, 3)).eval()
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 64, (48, 12), generator=gen)
    ids[::2, 9:] = 0  # padding, so the mask matters
    labels = torch.randint(0, 3, (48,), generator=gen)
    ctx = CompressContext(example_inputs=ids[:2], train_inputs=ids, train_labels=labels)
    return TinyBert(model, ctx, ids)


@pytest.fixture(scope="session")
def tiny_bert() -> TinyBert:
    return make_tiny_bert()


@pytest.fixture
def bert_factory() -> Callable[..., TinyBert]:
    return make_tiny_bert


@pytest.fixture(scope="module")
def digits_ctx(digits_task):  # type: ignore[no-untyped-def]
    return CompressContext(
        example_inputs=digits_task.example_inputs(),
        train_inputs=digits_task.train_inputs,
        train_labels=digits_task.train_labels,
    )
