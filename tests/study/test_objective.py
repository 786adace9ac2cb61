"""The trial boundary: whatever a variant raises fails that trial only; interrupts cross it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests_support import small
from torch import nn

import compresslab.bench as bench_module
from compresslab.api import load_recipe, search
from compresslab.study import failure_reason


class WeirdLibraryError(Exception):
    """An exception type no list of 'expected' errors would name."""


def _grid_recipe(tmp_path: Path) -> Any:
    # Baseline, prune(0.2), prune(0.4), dynamic_int8, and the two combinations: 6 variants.
    return load_recipe(
        small(
            tmp_path,
            compression=[
                {"method": "prune_channels", "params": {"ratio": {"choices": [0.2, 0.4]}}},
                {"method": "dynamic_int8"},
            ],
            search={"trials": 6, "sampler": "grid", "screen_examples": 0},
        )
    )


def _failing_build(real: Any, raises: dict[str, BaseException]) -> Any:
    def build(base: nn.Module, spec: Any, ctx: Any, **kw: Any) -> nn.Module:
        label = spec.label()
        for key, error in raises.items():
            if key in label:
                raise error
        return real(base, spec, ctx, **kw)

    return build


@pytest.mark.slow
def test_any_exception_in_a_variant_is_a_failed_trial_with_its_type(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, digits_task: Any
) -> None:
    # What bitsandbytes 0.50 raises on a layer its packed CPU kernel cannot take.
    raises = {
        "prune_channels(ratio=0.2) +": AssertionError("assert out_features % 32 == 0"),
        "prune_channels(ratio=0.4) +": WeirdLibraryError("the library broke"),
        "ratio=0.4)": KeyError("weight"),
    }
    monkeypatch.setattr(
        bench_module, "build_variant", _failing_build(bench_module.build_variant, raises)
    )
    result = search(_grid_recipe(tmp_path))
    errors = {t.variant: t.error for t in result.failed}
    assert errors == {
        "prune_channels(ratio=0.2) + dynamic_int8": "AssertionError: assert out_features % 32 == 0",
        "prune_channels(ratio=0.4) + dynamic_int8": "WeirdLibraryError: the library broke",
        "prune_channels(ratio=0.4)": "KeyError: 'weight'",
    }
    done = {t.variant for t in result.completed}
    assert done == {"baseline", "prune_channels(ratio=0.2)", "dynamic_int8"}
    report = (_grid_recipe(tmp_path).output_dir() / "report.md").read_text()
    assert "WeirdLibraryError: the library broke" in report


@pytest.mark.slow
def test_an_interrupt_is_not_swallowed_by_the_trial_boundary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, digits_task: Any
) -> None:
    raises = {"dynamic_int8": KeyboardInterrupt()}
    monkeypatch.setattr(
        bench_module, "build_variant", _failing_build(bench_module.build_variant, raises)
    )
    with pytest.raises(KeyboardInterrupt):
        search(_grid_recipe(tmp_path))


def test_failure_reason_names_the_type_and_bounds_the_message() -> None:
    assert failure_reason(AssertionError()) == "AssertionError"
    assert failure_reason(ValueError("  bad  ")) == "ValueError: bad"
    long = failure_reason(RuntimeError("x" * 10_000))
    assert long.startswith("RuntimeError: xxx") and len(long) == 2000
