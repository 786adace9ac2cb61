"""Per-example outcomes and the accuracy of a variant against its baseline's."""

from __future__ import annotations

import json

import numpy as np
import pytest

from compresslab.paired import Z95, newcombe_paired
from compresslab.records import (
    AccuracyVsBaseline,
    Outcomes,
    PerplexityVsBaseline,
    accuracy_vs_baseline,
    accuracy_vs_baseline_unpaired,
    from_json,
    perplexity_vs_baseline,
    to_json,
)


def right_wrong(n: int, share: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random(n) < share


def test_outcomes_round_trip_and_stay_compact() -> None:
    flags = right_wrong(10_000, 0.9, 0)
    outcomes = Outcomes.from_correct(flags, batch_size=256, examples_id="test:0-9999")
    assert outcomes.correct() == [bool(v) for v in flags]
    assert outcomes.successes == int(flags.sum()) and outcomes.n == 10_000
    text = json.dumps(to_json(outcomes))
    assert len(text) < 2048  # 10,000 examples: 1,250 bytes packed, base64 1,668 characters
    assert from_json(Outcomes, json.loads(text)) == outcomes
    # A list of bools and odd lengths work too (the last byte is partly used).
    assert Outcomes.from_correct([True, False, True], batch_size=1).correct() == [True, False, True]
    assert Outcomes.from_correct([], batch_size=1).correct() == []


def test_scores_and_likelihoods_round_trip() -> None:
    scores = Outcomes.from_scores([0.5, 0.25, 1.0], batch_size=8)
    assert from_json(Outcomes, to_json(scores)) == scores
    assert scores.values() == [0.5, 0.25, 1.0]
    nll = Outcomes.from_nll([10.5, 3.25], [7, 2], batch_size=4)
    assert from_json(Outcomes, json.loads(json.dumps(to_json(nll)))) == nll
    with pytest.raises(ValueError, match="no right/wrong"):
        scores.correct()


def test_inconsistent_outcomes_are_refused() -> None:
    with pytest.raises(ValueError, match="different count"):
        Outcomes("correct", 100, 8, bits="AA==")
    with pytest.raises(ValueError, match="different count"):
        Outcomes("nll", 2, 8, nll=(1.0, 2.0), tokens=(3,))
    with pytest.raises(ValueError, match="unknown outcome kind"):
        Outcomes("logits", 0, 8)  # type: ignore[arg-type]


def pair_with_flips(n: int, worse: int, better: int) -> tuple[Outcomes, Outcomes]:
    base = right_wrong(n, 0.9, 1)
    cand = base.copy()
    cand[np.flatnonzero(base)[:worse]] = False
    cand[np.flatnonzero(~base)[:better]] = True
    return (
        Outcomes.from_correct(cand, batch_size=32),
        Outcomes.from_correct(base, batch_size=32),
    )


def test_accuracy_vs_baseline_pairs_right_and_wrong() -> None:
    cand, base = pair_with_flips(4000, worse=30, better=10)
    result = accuracy_vs_baseline(cand, base, tolerance=0.01)
    assert result.method == "newcombe-paired" and result.paired
    assert (result.discordant_b, result.discordant_c) == (10, 30)
    assert result.delta == pytest.approx(-20 / 4000)
    both = sum(x and y for x, y in zip(cand.correct(), base.correct(), strict=True))
    assert (result.low, result.high) == newcombe_paired(10, 30, 4000, both_correct=both)
    assert result.decision == "within" and result.examples_to_decide is None
    assert from_json(AccuracyVsBaseline, json.loads(json.dumps(to_json(result)))) == result


def test_an_undecided_difference_says_how_many_examples_would_decide() -> None:
    cand, base = pair_with_flips(400, worse=10, better=4)
    result = accuracy_vs_baseline(cand, base, tolerance=0.01)
    assert result.decision == "undecided"
    assert result.examples_to_decide is not None and result.examples_to_decide > 400
    unpaired = accuracy_vs_baseline_unpaired(
        candidate_accuracy=cand.successes / 400, candidate_n=400,
        baseline_accuracy=base.successes / 400, baseline_n=400, tolerance=0.01,
    )  # fmt: skip
    assert unpaired.method == "wilson-unpaired" and not unpaired.paired
    assert unpaired.delta == pytest.approx(result.delta)
    # Pairing narrows the interval: the disagreements are all that vary.
    assert result.high - result.low < 0.75 * (unpaired.high - unpaired.low)
    assert unpaired.examples_to_decide is not None
    assert unpaired.examples_to_decide > result.examples_to_decide


def test_identical_models_are_within_on_a_large_pool_not_on_a_small_one() -> None:
    flags = right_wrong(5000, 0.9, 2)
    same = Outcomes.from_correct(flags, batch_size=1)
    result = accuracy_vs_baseline(same, same, tolerance=0.01)
    assert result.decision == "within" and result.low < 0 < result.high
    small = Outcomes.from_correct(flags[:150], batch_size=1)
    assert accuracy_vs_baseline(small, small, tolerance=0.01).decision == "undecided"


def test_scores_are_compared_by_a_paired_bootstrap() -> None:
    rng = np.random.default_rng(4)
    base_scores = rng.random(500)
    cand = Outcomes.from_scores(base_scores - 0.03, batch_size=16)
    base = Outcomes.from_scores(base_scores, batch_size=16)
    result = accuracy_vs_baseline(cand, base, tolerance=0.01, metric="f1")
    assert result.method == "paired-bootstrap" and result.metric == "f1"
    assert result.delta == pytest.approx(-0.03)
    assert result.decision == "below" and result.discordant_c == 500
    same = accuracy_vs_baseline(base, base, tolerance=0.01, metric="f1")
    assert same.low < 0 < same.high  # no collapse to [0, 0]


@pytest.mark.parametrize(
    ("candidate", "message"),
    [
        (Outcomes.from_correct([True] * 99, batch_size=32), "99 examples"),
        (Outcomes.from_correct([True] * 100, batch_size=1), "batches of 1"),
        (Outcomes.from_correct([True] * 100, batch_size=32, examples_id="other"), "other"),
        (Outcomes.from_scores([1.0] * 100, batch_size=32), "score outcomes"),
    ],
)
def test_outcomes_that_cannot_be_paired_are_refused_naming_both(
    candidate: Outcomes, message: str
) -> None:
    baseline = Outcomes.from_correct([True] * 100, batch_size=32)
    with pytest.raises(ValueError, match="candidate's .* baseline's") as caught:
        accuracy_vs_baseline(candidate, baseline, tolerance=0.01)
    assert message in str(caught.value) and "batches of 32" in str(caught.value)


def test_perplexity_vs_baseline_decides_on_the_ratio() -> None:
    rng = np.random.default_rng(6)
    tokens = rng.integers(20, 100, 300)
    base_nll = tokens * rng.normal(2.0, 0.2, 300)
    base = Outcomes.from_nll(base_nll, tokens, batch_size=4)
    slightly = Outcomes.from_nll(base_nll + tokens * 0.01, tokens, batch_size=4)
    result = perplexity_vs_baseline(slightly, base, tolerance=0.05)
    assert result.ratio == pytest.approx(np.exp(0.01)) and result.decision == "within"
    assert result.tokens == int(tokens.sum()) and result.texts == 300 and result.z == Z95
    much = Outcomes.from_nll(base_nll + tokens * rng.normal(0.1, 0.01, 300), tokens, batch_size=4)
    assert perplexity_vs_baseline(much, base, tolerance=0.05).decision == "below"
    assert from_json(PerplexityVsBaseline, to_json(result)) == result
    with pytest.raises(ValueError, match="perplexity_vs_baseline"):
        accuracy_vs_baseline(base, base, tolerance=0.01)
    empty = Outcomes.from_correct([], batch_size=4)
    with pytest.raises(ValueError, match="no examples"):
        accuracy_vs_baseline(empty, empty, tolerance=0.01)
    right = Outcomes.from_correct([True] * 300, batch_size=4)
    with pytest.raises(ValueError, match="needs nll outcomes"):
        perplexity_vs_baseline(right, right, tolerance=0.05)
