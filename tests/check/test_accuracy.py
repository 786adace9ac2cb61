"""The gate's accuracy check decides on paired per-example outcomes (issue 28, item 7)."""

from __future__ import annotations

import pytest

from compresslab.check import EnergyCheck, Measurement, Verdict
from compresslab.check.accuracy import Scored, accuracy_check, pairing_problem
from compresslab.check.verdict import combine, modeled_check
from compresslab.records import Outcomes


def _planted(pool: int, *, helped: int = 0, hurt: int = 0, examples_id: str = "pool") -> Outcomes:
    """A candidate's outcomes against a reference that gets every example right but ``helped``.

    The reference is wrong on the first ``helped`` examples (the candidate right); the
    candidate is wrong on the next ``hurt`` (the reference right).
    """
    right = [not (helped <= i < helped + hurt) for i in range(pool)]
    return Outcomes.from_correct(right, batch_size=256, examples_id=examples_id)


def _reference(pool: int, *, helped: int = 0, examples_id: str = "pool") -> Outcomes:
    return Outcomes.from_correct(
        [i >= helped for i in range(pool)], batch_size=256, examples_id=examples_id
    )


def _sides(pool: int, *, helped: int = 0, hurt: int = 0, **ids: str) -> tuple[Scored, Scored]:
    ref = _reference(pool, helped=helped, examples_id=ids.get("reference", "pool"))
    cand = _planted(pool, helped=helped, hurt=hurt, examples_id=ids.get("candidate", "pool"))
    return (
        Scored(ref.successes / pool, ref, source="stored in the baseline"),
        Scored(cand.successes / pool, cand),
    )


def test_a_planted_drop_of_one_and_a_half_points_is_below_a_one_point_tolerance() -> None:
    ref, cand = _sides(4000, hurt=60)
    check = accuracy_check(ref, cand, metric="accuracy", max_drop=0.01)
    assert check is not None and not check.passed and not check.inconclusive
    assert check.decision == "below" and check.method == "newcombe-paired" and check.paired
    assert check.delta == pytest.approx(-0.015) and check.examples == 4000
    assert check.low is not None and check.high is not None and check.high < -0.01
    assert (check.better, check.worse) == (0, 60)
    for said in ("accuracy fell by more than the allowed 1 point", "on the same 4000 examples",
                 "paired difference -1.50 points",
                 f"95% interval {check.low * 100:+.2f} to {check.high * 100:+.2f}",
                 "the whole interval is below -1 point", "stored in the baseline"):  # fmt: skip
        assert said in check.sentence


def test_a_planted_zero_point_difference_is_within() -> None:
    ref, cand = _sides(4000, helped=30, hurt=30)
    check = accuracy_check(ref, cand, metric="accuracy", max_drop=0.01)
    assert check is not None and check.passed and not check.inconclusive
    assert (
        check.decision == "within"
        and check.delta == 0
        and (check.better, check.worse)
        == (
            30,
            30,
        )
    )
    assert check.low is not None and check.low >= -0.01
    assert "accuracy within the allowed drop of 1 point" in check.sentence
    assert "lower end is at or above -1 point" in check.sentence


def test_a_drop_a_point_comparison_passes_is_undecided_on_a_small_pool() -> None:
    # 3 of 400 examples worse: 0.75 points, under the 1-point tolerance as a point figure.
    ref, cand = _sides(400, hurt=3)
    check = accuracy_check(ref, cand, metric="accuracy", max_drop=0.01)
    assert check is not None and check.passed and check.inconclusive
    assert check.decision == "undecided"
    assert check.examples_to_decide is not None and check.examples_to_decide > 400
    assert "accuracy undecided against the allowed drop of 1 point" in check.sentence
    assert "the interval straddles -1 point" in check.sentence
    assert f"about {check.examples_to_decide} examples in all would decide" in check.sentence


def test_the_interval_level_follows_check_alpha() -> None:
    ref, cand = _sides(4000, hurt=60)
    at_95 = accuracy_check(ref, cand, metric="accuracy", max_drop=0.01)
    at_99 = accuracy_check(ref, cand, metric="accuracy", max_drop=0.01, alpha=0.01)
    assert at_95 is not None and at_99 is not None and at_99.level == pytest.approx(0.99)
    assert at_99.low < at_95.low and at_99.high > at_95.high  # type: ignore[operator]
    assert "99% interval" in at_99.sentence


def test_outcomes_of_other_examples_are_not_paired() -> None:
    ref, cand = _sides(4000, hurt=60, reference="old", candidate="new")
    assert ref.outcomes is not None and cand.outcomes is not None
    problem = pairing_problem(cand.outcomes, ref.outcomes)
    assert problem is not None and "examples old" in problem and "examples new" in problem
    with pytest.raises(ValueError, match="cannot be paired"):
        accuracy_check(ref, cand, metric="accuracy", max_drop=0.01)
    # Not gated: reported as point figures, saying why they are not paired.
    ungated = accuracy_check(ref, cand, metric="accuracy", max_drop=None)
    assert ungated is not None and ungated.passed and ungated.method == "point"
    assert "cannot be paired" in ungated.sentence and "not gated" in ungated.sentence
    other_batch = Outcomes.from_correct([True] * 4000, batch_size=32, examples_id="old")
    assert pairing_problem(other_batch, ref.outcomes) is not None


def test_without_outcomes_unpaired_then_point_figures_labelled() -> None:
    cand = _sides(4000, hurt=60)[1]
    counted = Scored(1.0, examples=4000, source="the baseline b.json")
    unpaired = accuracy_check(counted, cand, metric="accuracy", max_drop=0.01)
    assert unpaired is not None and unpaired.method == "wilson-unpaired" and not unpaired.paired
    assert unpaired.decision in ("below", "undecided") and unpaired.examples == 4000
    assert "unpaired (the baseline b.json holds no per-example outcomes" in unpaired.sentence
    figure = accuracy_check(Scored(1.0), cand, metric="accuracy", max_drop=0.01)
    assert figure is not None and figure.method == "point" and figure.decision is None
    assert not figure.passed and "a point comparison" in figure.sentence
    assert "compresslab baseline RECIPE --out FILE --force" in figure.sentence
    assert accuracy_check(None, cand, metric="accuracy", max_drop=0.01) is None


def test_macro_f1_is_compared_as_point_figures() -> None:
    ref, cand = _sides(4000, hurt=60)
    check = accuracy_check(ref, cand, metric="macro_f1", max_drop=0.01)
    assert check is not None and check.method == "point" and not check.passed
    assert "decide an accuracy tolerance, not a macro_f1 one" in check.sentence


def test_not_gated_reports_the_paired_figures_and_never_fails() -> None:
    ref, cand = _sides(4000, hurt=60)
    check = accuracy_check(ref, cand, metric="accuracy", max_drop=None)
    assert check is not None and check.passed and not check.inconclusive and not check.gated
    assert check.method == "newcombe-paired" and check.delta == pytest.approx(-0.015)
    assert check.decision is None and "not gated" in check.sentence


def _verdict(accuracy, energy_outcome: str = "pass", on_inconclusive: str = "pass") -> Verdict:  # type: ignore[no-untyped-def]
    m = Measurement(1.0, 0.98, 1.02, 6, energy_outcome, 1.0, 1.0)
    energy = EnergyCheck(outcome=energy_outcome, limit=1.05, level=0.95, measurements=[m])
    modeled = modeled_check(1.0, 1.0, max_increase=0.0)
    return Verdict(
        recipe="planted",
        outcome=combine(energy, modeled, accuracy),
        on_inconclusive=on_inconclusive,
        reference="ref",
        measured_as="programs",
        energy=energy,
        modeled=modeled,
        accuracy=accuracy,
    )


def test_the_decision_sets_the_gates_outcome_and_exit_code() -> None:
    below = accuracy_check(*_sides(4000, hurt=60), metric="accuracy", max_drop=0.01)
    within = accuracy_check(*_sides(4000, helped=30, hurt=30), metric="accuracy", max_drop=0.01)
    undecided = accuracy_check(*_sides(400, hurt=3), metric="accuracy", max_drop=0.01)
    assert _verdict(below).outcome == "regression" and _verdict(below).exit_code == 1
    assert _verdict(within).outcome == "pass" and _verdict(within).exit_code == 0
    assert _verdict(undecided).outcome == "inconclusive" and _verdict(undecided).exit_code == 0
    strict = _verdict(undecided, on_inconclusive="fail")
    assert strict.exit_code == 1
    assert "inconclusive (accuracy)" in strict.reasons[-1]
    assert "check.on_inconclusive is fail" in strict.reasons[-1]
    # An energy regression stays one whatever accuracy says.
    assert _verdict(undecided, energy_outcome="regression").outcome == "regression"


def test_json_and_markdown_carry_the_paired_figures() -> None:
    below = accuracy_check(*_sides(4000, hurt=60), metric="accuracy", max_drop=0.01)
    verdict = _verdict(below)
    data = verdict.to_dict()["accuracy"]
    assert data["decision"] == "below" and data["method"] == "newcombe-paired"
    assert data["examples"] == 4000 and data["delta"] == pytest.approx(-0.015)
    assert data["low"] < data["high"] < -0.01 and data["tolerance"] == 0.01
    assert data["paired"] and (data["better"], data["worse"]) == (0, 60)
    md = verdict.markdown()
    assert "| accuracy (paired, 4000 examples) | 1.0000 | 0.9850 | -1.50 points (95%:" in md
    assert "allowed drop 1 point: below |" in md
