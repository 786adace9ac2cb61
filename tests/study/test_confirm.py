"""Claims are confirmed: the frontier re-measured paired with the baseline after the search."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests_support import small

from compresslab.api import load_recipe, rebuild_report, search


def test_the_frontier_is_confirmed_and_the_headline_says_so(
    tmp_path: Path, digits_task: Any
) -> None:
    recipe = load_recipe(
        small(
            tmp_path,
            compression=[
                {"method": "prune_channels", "params": {"ratio": {"choices": [0.3, 0.6]}}},
                {"method": "dynamic_int8"},
            ],
            search={"trials": 6, "sampler": "grid", "screen_examples": 0, "confirm_pairs": 3},
        )
    )
    result = search(recipe)
    front = [r for r in result.frontier if not r.is_baseline]
    assert front, "a pruned or int8 variant should beat the baseline's energy"
    for r in front:
        assert r.confirmed is not None and r.confirmed["pairs"] >= 3
        assert r.confirmed["ci95_low"] <= r.confirmed["ratio"] <= r.confirmed["ci95_high"]
        assert r.confirmed["search_ratio"] == r.ratio_vs_baseline
    off_front = [r for r in result.completed if r.number not in {f.number for f in front}]
    assert all(r.confirmed is None for r in off_front)  # only claims are re-measured
    report = (recipe.output_dir() / "report.md").read_text()
    if result.best_saving() is not None and not result.best_saving().is_baseline:
        assert "confirmed after the search" in report and "the search itself measured" in report

    first = {r.number: r.confirmed["at"] for r in front}
    again = rebuild_report(recipe, confirm=True)
    refreshed = {r.number: r.confirmed["at"] for r in again.frontier if r.confirmed}
    assert set(refreshed) == set(first) and all(refreshed[n] > first[n] for n in first)


def test_confirmation_can_be_turned_off(tmp_path: Path, digits_task: Any) -> None:
    recipe = load_recipe(
        small(tmp_path, search={"trials": 3, "sampler": "random", "seed": 2, "confirm_pairs": 0})
    )
    result = search(recipe)
    assert all(r.confirmed is None for r in result.trials)
    # The headline says so when it names a variant (the best saving may be the baseline
    # itself, with a more accurate, dearer variant on the frontier: then there is no claim).
    best = result.best_saving()
    if best is not None and not best.is_baseline:
        assert "not confirmed" in (recipe.output_dir() / "report.md").read_text()
