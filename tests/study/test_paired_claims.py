"""A trial's accuracy against the baseline's: paired where both kept their outcomes."""

from __future__ import annotations

import dataclasses

from record_builders import energy

from compresslab.records import Evaluation, Outcomes, PairedRatio, TrialRecord
from compresslab.study.records import compared_with_baseline


def _record(number: int, right: list[bool] | None, *, examples: int = 0) -> TrialRecord:
    metric = sum(right) / len(right) if right else 0.9
    outcomes = Outcomes.from_correct(right, batch_size=256) if right is not None else None
    evaluation = Evaluation(
        metric=metric,
        metric_ci95=(metric, metric),
        energy=energy(1e-3),
        vs_baseline=PairedRatio.itself(),
        outcomes=outcomes,
        metric_examples=len(right) if right is not None else examples,
    )
    return TrialRecord(
        number=number,
        state="COMPLETE",
        variant="baseline" if number == 0 else f"v{number}",
        is_baseline=number == 0,
        evaluation=evaluation,
    )


def test_a_variant_is_compared_on_the_same_examples_and_decided() -> None:
    base = [True] * 9_000 + [False] * 1_000
    same = list(base)
    worse = list(base)
    for i in range(300):  # 3 points worse: 300 examples the baseline got right are now wrong
        worse[i] = False
    records = compared_with_baseline([_record(0, base), _record(1, same), _record(2, worse)], 0.01)
    itself, kept, dropped = (r.accuracy_vs_baseline for r in records)
    assert itself is not None and itself.delta == 0 and itself.decision == "within"
    assert kept is not None and kept.paired and kept.method == "newcombe-paired"
    assert kept.decision == "within" and kept.discordant_b == kept.discordant_c == 0
    assert dropped is not None and dropped.decision == "below"
    assert abs(dropped.delta + 0.03) < 1e-12 and dropped.high < -0.01


def test_without_outcomes_the_unpaired_fallback_is_labelled() -> None:
    base = [True] * 9_000 + [False] * 1_000
    unpaired = _record(1, None, examples=10_000)
    unpaired = dataclasses.replace(
        unpaired,
        evaluation=dataclasses.replace(unpaired.evaluation, metric=0.9),  # type: ignore[arg-type]
    )
    records = compared_with_baseline([_record(0, base), unpaired], 0.01)
    claim = records[1].accuracy_vs_baseline
    assert claim is not None and not claim.paired and claim.method == "wilson-unpaired"
    # Unpaired, the same accuracy on 10,000 examples is not enough to show one point.
    assert claim.low < -0.005


def test_a_study_from_before_outcomes_and_counts_is_not_compared() -> None:
    old = [_record(0, None), _record(1, None)]
    assert all(r.accuracy_vs_baseline is None for r in compared_with_baseline(old, 0.01))
