"""The search space is counted, never listed, to choose a sampler; a small budget is warned."""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from tests_support import small

from compresslab.api import load_recipe
from compresslab.study import SearchSpace, sampler_name
from compresslab.study.samplers import budget_warnings, nsga2_population
from compresslab.study.space import grid_size


def space_of(recipe: Any) -> SearchSpace:
    return SearchSpace.from_recipe(recipe.compression, recipe.runtime)


@pytest.mark.parametrize(
    "compression",
    [
        [{"method": "prune_channels", "params": {"ratio": {"low": 0.1, "high": 0.6, "step": 0.1}}}],
        [
            {
                "method": "prune_channels",
                "params": {
                    "ratio": {"choices": [0.2, 0.4]},
                    "importance": {"choices": ["l1", "l2"]},
                    "recovery_epochs": {"low": 0, "high": 4, "step": 2},
                },
            },
            {"method": "sparsity", "params": {"amount": {"low": 0.3, "high": 0.9, "step": 0.3}}},
            {"method": "dynamic_int8"},
            {"method": "bf16"},
        ],
    ],
)
def test_the_counted_size_is_the_listed_grid(tmp_path: Path, compression: list[Any]) -> None:
    recipe = load_recipe(
        small(tmp_path, compression=compression, runtime={"batch_size": {"choices": [16, 32]}})
    )
    space = space_of(recipe)
    assert space.size() == len(space.grid()) == grid_size(space.by_stage, space.runtime)


def test_auto_never_lists_a_space_of_millions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = load_recipe(
        small(
            tmp_path,
            compression=[
                {
                    "method": "prune_channels",
                    "params": {"ratio": {"low": 0, "high": 0.95, "step": 1e-7}},
                }
            ],
            search={"trials": 30, "sampler": "auto"},
        )
    )
    space = space_of(recipe)

    def listed(self: SearchSpace) -> None:
        raise AssertionError("the space was listed")

    monkeypatch.setattr(SearchSpace, "grid", listed)
    tracemalloc.start()
    try:
        assert sampler_name(recipe, space) == "tpe"  # auto: the replay evidence, never a grid
        assert space.size() == 9_500_002  # 9.5 million ratios, and no pruning
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000  # it used 3 GB


def test_a_budget_too_small_for_the_space_is_warned_about(tmp_path: Path) -> None:
    recipe = load_recipe(Path(__file__).resolve().parents[2] / "recipes" / "digits.yaml")
    space = space_of(recipe)
    assert budget_warnings(recipe, space, "nsga2", 30) == []  # a budget of 30 is fine
    (only,) = budget_warnings(recipe, space, "nsga2", 1)
    assert only.startswith("a budget of 1 variant evaluates only the uncompressed baseline")
    two = budget_warnings(recipe, space, "nsga2", 2)
    assert any("12 categorical choices" in w and "at least 24" in w for w in two), two
    pop = nsga2_population(recipe.search.trials)
    assert any(f"NSGA-II's first generation is {pop} random variants" in w for w in two), two
    assert any("tpe draws its first 10" in w for w in budget_warnings(recipe, space, "tpe", 8))
    # A space that fits the budget needs no warning, however small.
    tiny = load_recipe(small(tmp_path, compression=[{"method": "bf16"}]))
    assert budget_warnings(tiny, space_of(tiny), "grid", 2) == []
