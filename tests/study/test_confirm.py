"""Claims are confirmed: the frontier re-measured paired with the baseline after the search."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
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
        assert r.confirmed is not None and r.confirmed["pairs"] >= 3 and r.confirmed["rounds"] == 3
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
    best = result.best_saving()
    if best is not None and not best.is_baseline:
        assert "not confirmed" in (recipe.output_dir() / "report.md").read_text()


def test_rounds_combine_into_an_interval_from_their_spread_never_below_the_pairs() -> None:
    import math
    from types import SimpleNamespace

    from compresslab.stats import ci95_halfwidth
    from compresslab.study.confirm import _combine

    def paired(*pair_ratios: float) -> SimpleNamespace:
        """A round whose pairs have these ratios (reference 1 J, candidate the ratio)."""
        ratio = math.exp(sum(math.log(r) for r in pair_ratios) / len(pair_ratios))
        ref = SimpleNamespace(
            energy_j_per_inference=1.0, contended=False, window_j_per_inference=(1.0,) * 2
        )
        cand = SimpleNamespace(
            energy_j_per_inference=ratio, contended=False, window_j_per_inference=pair_ratios
        )
        return SimpleNamespace(
            ratio=SimpleNamespace(ratio=ratio, pairs=len(pair_ratios)),
            candidate=cand,
            reference=ref,
        )

    steady = _combine([paired(0.5, 0.5), paired(0.5, 0.5), paired(0.5, 0.5)], search_ratio=0.4)
    assert (steady["ratio"], steady["ci95_low"], steady["ci95_high"]) == (0.5, 0.5, 0.5)
    drifting = _combine(
        [paired(0.45, 0.45), paired(0.5, 0.5), paired(0.56, 0.56)], search_ratio=0.4
    )
    assert drifting["ci95_low"] < 0.45 and drifting["ci95_high"] > 0.56  # wider than the rounds
    assert drifting["rounds"] == 3 and drifting["pairs"] == 6
    assert drifting["interval_from"] == "rounds"
    # Rounds that agree by chance, of pairs that scatter: the pairs' interval is the floor.
    pairs = [(0.4, 0.625), (0.625, 0.4), (0.5, 0.5)]
    lucky = _combine([paired(*p) for p in pairs], search_ratio=0.4)
    logs = [math.log(r) for p in pairs for r in p]
    assert lucky["interval_from"] == "pairs"
    assert lucky["ratio"] == pytest.approx(0.5)
    assert math.log(lucky["ci95_high"] / lucky["ratio"]) == pytest.approx(ci95_halfwidth(logs))
    assert lucky["ci95_low"] < 0.45 and lucky["ci95_high"] > 0.55


def test_repeatability_comes_from_the_baseline_measured_beside_each_variant() -> None:
    from types import SimpleNamespace

    from compresslab.study.records import repeatability

    def trial(j: float) -> SimpleNamespace:
        return SimpleNamespace(
            state=SimpleNamespace(name="COMPLETE"),
            user_attrs={"reference_energy": {"energy_j_per_inference": j}},
        )

    assert repeatability([trial(1.0), trial(1.1)]) is None  # too few to say
    rep = repeatability([trial(1.0), trial(1.1), trial(0.9), trial(1.0)])
    assert rep is not None and rep["n"] == 4 and 0.07 < rep["cv"] < 0.09
    assert rep["ci95_rel"] > 2 * rep["cv"]  # a prediction interval for one more measurement
