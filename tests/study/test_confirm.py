"""Claims are confirmed: the frontier re-measured paired with the baseline after the search."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from record_builders import energy
from tests_support import small

from compresslab.api import load_recipe, rebuild_report, search
from compresslab.bench import NO_CONFIRMATION_SPLIT
from compresslab.records import Evaluation, PairedRatio, to_json


@pytest.mark.slow
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
        assert r.confirmed is not None and r.confirmed.pairs >= 3 and r.confirmed.rounds == 3
        assert r.confirmed.ci95_low <= r.confirmed.ratio <= r.confirmed.ci95_high
        assert r.confirmed.search_ratio == r.ratio_vs_baseline
        # Digits keeps no untouched split: its accuracy is not confirmed, and says why.
        assert r.confirmed.accuracy is None
        assert r.confirmed.accuracy_note == NO_CONFIRMATION_SPLIT
        assert r.accuracy_vs_baseline is not None and r.accuracy_vs_baseline.decision == "within"
    off_front = [r for r in result.completed if r.number not in {f.number for f in front}]
    assert all(r.confirmed is None for r in off_front)  # only claims are re-measured
    report = (recipe.output_dir() / "report.md").read_text()
    if result.best_saving() is not None and not result.best_saving().is_baseline:
        assert "confirmed after the search" in report and "the search itself measured" in report
        assert "Accuracy not confirmed: the task has no untouched confirmation split" in report

    # The search's ratios were measured before anything was learnt: their pairs' own
    # interval, said so; the confirmation rounds then taught this machine's term.
    from compresslab.api import measure_recipe
    from compresslab.protocol.ratio_repeatability import RATIO_UNKNOWN, ratio_term
    from compresslab.protocol.repeatability import RepeatabilityStore

    for r in result.completed:
        if r.is_baseline:
            continue
        vs = r.vs_baseline
        assert vs is not None and vs.ratio_repeatability_source == RATIO_UNKNOWN
        assert (vs.ci95_low, vs.ci95_high) == (vs.ci95_low_pairs, vs.ci95_high_pairs)
    csv = (recipe.output_dir() / "trials.csv").read_text().splitlines()[0].split(",")
    assert {"ratio_ci95_low_pairs", "ratio_repeatability_source"} <= set(csv)
    energy = front[0].energy
    assert energy is not None
    tier = f"{energy.sampler}/{energy.provenance}"
    learnt = ratio_term(RepeatabilityStore(), tier)
    assert learnt is not None and learnt.n == 3 * len(front)
    assert "confirmation rounds of trial" in learnt.source
    # A ratio measured on its own afterwards (`compresslab measure --trial`) is widened by it.
    again_measured = measure_recipe(recipe, trial=front[0].number).evaluation.vs_baseline
    assert again_measured.ratio_repeatability_rel == pytest.approx(learnt.ci95_rel)
    assert again_measured.ratio_repeatability_source == learnt.source
    assert again_measured.ci95_low_pairs is not None and again_measured.ci95_high_pairs is not None
    # Widened or equal (with no spread to add, equal up to the rounding of exp and log).
    assert again_measured.ci95_low <= again_measured.ci95_low_pairs * (1 + 1e-12)
    assert again_measured.ci95_high >= again_measured.ci95_high_pairs * (1 - 1e-12)

    first = {r.number: r.confirmed.at for r in front if r.confirmed}
    again = rebuild_report(recipe, confirm=True)
    refreshed = {r.number: r.confirmed.at for r in again.frontier if r.confirmed}
    assert set(refreshed) == set(first) and all(refreshed[n] > first[n] for n in first)


@pytest.mark.slow
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
    assert (steady.ratio, steady.ci95_low, steady.ci95_high) == (0.5, 0.5, 0.5)
    drifting = _combine(
        [paired(0.45, 0.45), paired(0.5, 0.5), paired(0.56, 0.56)], search_ratio=0.4
    )
    assert drifting.ci95_low < 0.45 and drifting.ci95_high > 0.56  # wider than the rounds
    assert drifting.rounds == 3 and drifting.pairs == 6
    assert drifting.interval_from == "rounds"
    # Rounds that agree by chance, of pairs that scatter: the pairs' interval is the floor.
    pairs = [(0.4, 0.625), (0.625, 0.4), (0.5, 0.5)]
    lucky = _combine([paired(*p) for p in pairs], search_ratio=0.4)
    logs = [math.log(r) for p in pairs for r in p]
    assert lucky.interval_from == "pairs"
    assert lucky.ratio == pytest.approx(0.5)
    assert math.log(lucky.ci95_high / lucky.ratio) == pytest.approx(ci95_halfwidth(logs))
    assert lucky.ci95_low < 0.45 and lucky.ci95_high > 0.55


def test_repeatability_comes_from_the_baseline_measured_beside_each_variant() -> None:
    from types import SimpleNamespace

    from compresslab.study.records import repeatability

    def trial(j: float) -> SimpleNamespace:
        ev = Evaluation(
            metric=0.9,
            metric_ci95=(0.9, 0.9),
            energy=energy(j),
            vs_baseline=PairedRatio(ratio=1.0, ci95_low=0.9, ci95_high=1.1),
            reference_energy=energy(j),
        )
        return SimpleNamespace(
            number=1,
            values=[0.9, 1.0],
            state=SimpleNamespace(name="COMPLETE"),
            user_attrs={"format": 1, "evaluation": to_json(ev)},
        )

    assert repeatability([trial(1.0), trial(1.1)]) is None  # too few to say
    rep = repeatability([trial(1.0), trial(1.1), trial(0.9), trial(1.0)])
    assert rep is not None and rep.n == 4 and 0.07 < rep.cv < 0.09
    assert rep.ci95_rel > 2 * rep.cv  # a prediction interval for one more measurement


def test_a_confirmations_rounds_teach_the_machines_repeatability_of_ratios() -> None:
    """Each round's log ratio and pair variance is kept; this machine's rounds teach the term."""
    import math
    import statistics
    from types import SimpleNamespace

    from compresslab.machine import machine_id
    from compresslab.protocol.ratio_repeatability import ratio_term
    from compresslab.protocol.repeatability import RepeatabilityStore
    from compresslab.stats import t95
    from compresslab.study.confirm import _combine, _rounds_spread
    from compresslab.study.run import learn_ratio_repeatability

    def paired(*pair_ratios: float) -> SimpleNamespace:
        ratio = math.exp(statistics.fmean(math.log(r) for r in pair_ratios))
        side = {"contended": False, "sampler": "estimate", "provenance": "estimated"}
        ref = SimpleNamespace(
            energy_j_per_inference=1.0, window_j_per_inference=(1.0,) * len(pair_ratios), **side
        )
        cand = SimpleNamespace(
            energy_j_per_inference=ratio, window_j_per_inference=pair_ratios, **side
        )
        return SimpleNamespace(
            ratio=SimpleNamespace(ratio=ratio, pairs=len(pair_ratios)),
            candidate=cand,
            reference=ref,
        )

    rounds = [paired(0.50, 0.51), paired(0.56, 0.55), paired(0.45, 0.46)]
    spread = _rounds_spread(rounds)  # type: ignore[arg-type]
    logs = [
        statistics.fmean([math.log(a), math.log(b)])
        for a, b in [(0.50, 0.51), (0.56, 0.55), (0.45, 0.46)]
    ]
    within = [
        statistics.variance([math.log(a), math.log(b)]) / 2
        for a, b in [(0.50, 0.51), (0.56, 0.55), (0.45, 0.46)]
    ]
    assert spread["round_log_ratios"] == pytest.approx(logs)
    assert spread["round_within_var"] == pytest.approx(within)
    assert spread["tier"] == "estimate/estimated" and spread["machine_id"] == machine_id()

    combined = _combine(rounds, search_ratio=0.4)  # type: ignore[arg-type]
    here = to_json(dataclasses.replace(combined, **spread))
    there = {**here, "machine_id": "0123456789ab"}  # confirmed by a fleet's other machine
    older = to_json(combined)  # no rounds' spread
    study = SimpleNamespace(
        study_name="digits",
        user_attrs={"confirmed:3": here, "confirmed:4": there, "confirmed:5": older},
    )
    assert learn_ratio_repeatability(study, "sqlite:///x/study.db") == {"estimate/estimated": 3}
    term = ratio_term(RepeatabilityStore(), "estimate/estimated")
    assert term is not None and (term.n, term.dof) == (3, 2)
    tau2 = statistics.variance(logs) - statistics.fmean(within)
    assert term.tau == pytest.approx(math.sqrt(tau2))
    assert term.ci95_rel == pytest.approx(t95(2) * math.sqrt(tau2))
    assert "3 confirmation rounds of trial 3 of study digits" in term.source
    # The same confirmation learnt again replaces its entry (one per trial and study).
    learn_ratio_repeatability(study, "sqlite:///x/study.db")
    assert ratio_term(RepeatabilityStore(), "estimate/estimated").n == 3  # type: ignore[union-attr]
