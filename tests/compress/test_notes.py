"""Notes on a model (what a step left undone) survive every later step of build_variant."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import pytest
import torch
from torch import nn

from compresslab.compress import (
    METHODS,
    CompressContext,
    CompressionMethod,
    Step,
    VariantSpec,
    add_note,
    build_variant,
    notes_of,
)


class _Noting(CompressionMethod):
    """A prune-stage method that notes on a brand-new model it returns (no earlier notes)."""

    name = "noting"
    stage = "prune"
    summary = "test method"

    def apply(self, model: nn.Module, params: Mapping[str, Any], ctx: CompressContext) -> nn.Module:
        fresh = nn.Sequential(*copy.deepcopy(list(model.children())))
        add_note(fresh, "noting: first")
        return fresh


class _NotingInPlace(CompressionMethod):
    name = "noting_in_place"
    stage = "sparsify"
    summary = "test method"

    def apply(self, model: nn.Module, params: Mapping[str, Any], ctx: CompressContext) -> nn.Module:
        add_note(model, "noting_in_place: second")
        return model


@pytest.fixture
def noting_methods(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(METHODS, "noting", _Noting())
    monkeypatch.setitem(METHODS, "noting_in_place", _NotingInPlace())


def _model() -> tuple[nn.Module, CompressContext]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    return model, CompressContext(example_inputs=torch.randn(2, 8))


def test_add_note_appends_and_notes_of_copies() -> None:
    model, _ = _model()
    assert notes_of(model) == []
    add_note(model, "a")
    add_note(model, "b")
    got = notes_of(model)
    assert got == ["a", "b"]
    got.append("c")  # the caller's list is a copy
    assert notes_of(model) == ["a", "b"]
    assert notes_of(copy.deepcopy(model)) == ["a", "b"]
    assert "_compresslab_notes" not in str(model.state_dict().keys())  # not a weight


def test_build_variant_carries_notes_onto_every_later_model(noting_methods) -> None:  # type: ignore[no-untyped-def]
    model, ctx = _model()
    spec = VariantSpec((Step("noting"), Step("noting_in_place"), Step("bf16")))
    built = build_variant(model, spec, ctx)
    assert type(built).__name__ == "CastWrapper"  # bf16 returned a new model ...
    assert notes_of(built) == ["noting: first", "noting_in_place: second"]  # ... with the notes
    assert notes_of(model) == []


def test_a_step_without_notes_keeps_the_earlier_ones(noting_methods) -> None:  # type: ignore[no-untyped-def]
    model, ctx = _model()
    built = build_variant(model, VariantSpec((Step("noting"), Step("dynamic_int8"))), ctx)
    assert notes_of(built) == ["noting: first"]
    assert notes_of(build_variant(model, VariantSpec(), ctx)) == []
