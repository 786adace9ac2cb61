"""The statistics of an accuracy claim: published values, edge cases and simulations."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from compresslab.looks import alpha_spending
from compresslab.paired import (
    Z95,
    decide,
    examples_to_decide,
    examples_to_decide_unpaired,
    newcombe_paired,
    newcombe_unpaired,
    paired_bootstrap,
    perplexity_ratio,
    wilson,
)
from compresslab.tasks.metrics import wilson_interval


def test_wilson_is_the_score_interval_and_the_metrics_one_follows() -> None:
    # No success in 32: [0, 0.1072] (the Wilson interval printed by R's cards/cicalc tests).
    assert wilson(0, 32) == pytest.approx((0.0, 0.1071792), abs=1e-7)
    assert wilson(32, 32) == pytest.approx((0.8928208, 1.0), abs=1e-7)
    assert wilson_interval(95, 100) == wilson(95, 100, z=1.96)
    with pytest.raises(ValueError, match="at least one example"):
        wilson(0, 0)
    with pytest.raises(ValueError, match="lie in"):
        wilson(5, 4)


# Newcombe (1998), Stat Med 17:2635, Table II, method 10, for his examples (a)-(d) given as
# (both right, first only, second only, both wrong); the values as the R package propint's tests
# quote them ("produces the results reported in Newcombe1998"). Then the Cavo et al. (2012)
# table of Fagerland, Lydersen and Laake's book, ch. 8 (contingencytables' test-ch8.R).
@pytest.mark.parametrize(
    ("a", "b", "c", "d", "low", "high"),
    [
        (36, 12, 2, 0, 0.0569, 0.3404),
        (18, 12, 2, 18, 0.0562, 0.3290),
        (53, 0, 0, 1, -0.0729, 0.0729),
        (0, 30, 0, 0, 0.8395, 1.0),
        (59, 6, 16, 80, -0.1186, -0.0046),
    ],
)
def test_newcombe_paired_reproduces_published_intervals(
    a: int, b: int, c: int, d: int, low: float, high: float
) -> None:
    assert newcombe_paired(b, c, a + b + c + d, both_correct=a) == pytest.approx(
        (low, high), abs=5e-5
    )


def test_newcombe_unpaired_reproduces_published_intervals() -> None:
    # Newcombe (1998), Stat Med 17:873, example (d) (ratesci's tests); Perondi et al. (2004) in
    # Fagerland et al.'s book, ch. 4 (contingencytables' test-ch4.R).
    assert newcombe_unpaired(5, 56, 0, 29) == pytest.approx((-0.0381, 0.1926), abs=5e-5)
    assert newcombe_unpaired(7, 34, 1, 34) == pytest.approx((0.0189, 0.3404), abs=5e-5)


@pytest.mark.parametrize("n", [50, 150, 380, 1000, 10_000])
def test_no_disagreement_gives_an_interval_that_shrinks_like_the_score_bound(n: int) -> None:
    # Every answer right for both: exactly +- z^2 / (n + z^2), about 3.84 / (n + 3.84).
    bound = Z95**2 / (n + Z95**2)
    assert newcombe_paired(0, 0, n, both_correct=n) == pytest.approx((-bound, bound))
    # With some answers wrong (90% right) the interval is narrower but never empty.
    low, high = newcombe_paired(0, 0, n, both_correct=int(0.9 * n))
    assert -bound < low < 0 < high < bound
    assert high > 0.3 * bound


def test_newcombe_paired_refuses_counts_that_do_not_fit() -> None:
    with pytest.raises(ValueError, match="add up to at most n"):
        newcombe_paired(5, 5, 10, both_correct=5)
    with pytest.raises(ValueError, match="non-negative"):
        newcombe_paired(-1, 0, 10, both_correct=5)
    with pytest.raises(ValueError, match="at least one example"):
        newcombe_paired(0, 0, 0, both_correct=0)


@pytest.mark.parametrize(
    ("n", "rates"),
    [
        (360, (0.985, 0.004, 0.006)),  # digits-like: few disagreements
        (400, (0.85, 0.02, 0.03)),  # MiniLM-like
        (1000, (0.86, 0.01, 0.025)),
    ],
)
def test_newcombe_paired_covers_the_true_difference(n: int, rates: tuple[float, ...]) -> None:
    both, b, c = rates
    rng = np.random.default_rng(7)
    draws = rng.multinomial(n, [both, b, c, 1 - both - b - c], size=400)
    covered = sum(
        lo <= b - c <= hi
        for lo, hi in (newcombe_paired(x[1], x[2], n, both_correct=x[0]) for x in draws)
    )
    assert covered / len(draws) >= 0.93


def test_decide_is_three_way() -> None:
    assert decide(-0.005, 0.01, 0.01) == "within"
    assert decide(-0.01, 0.01, 0.01) == "within"  # at the tolerance counts as within
    assert decide(-0.03, -0.011, 0.01) == "below"
    assert decide(-0.02, 0.0, 0.01) == "undecided"
    with pytest.raises(ValueError, match="non-negative"):
        decide(0.0, 0.0, -0.01)


def test_examples_to_decide_finds_the_smallest_deciding_pool() -> None:
    # All right, no disagreement: 1 point needs z^2 / (n + z^2) <= 0.01, n >= 380.3.
    assert examples_to_decide(0, 0, 150, 0.01, both_correct=150) == 381
    m = examples_to_decide(20, 35, 1000, 0.01, both_correct=850)
    assert m is not None and m > 1000

    def at(size: int) -> str:
        k = size / 1000
        return decide(*newcombe_paired(20 * k, 35 * k, size, both_correct=850 * k), 0.01)

    assert at(m) == "below" and at(m - 1) == "undecided"
    assert examples_to_decide(10, 40, 1000, 0.01, both_correct=850) == 1000  # decided already
    # A difference exactly at -tolerance is never decided.
    assert examples_to_decide(20, 30, 1000, 0.01, both_correct=850) is None


def test_examples_to_decide_unpaired_needs_far_more_than_paired() -> None:
    paired_m = examples_to_decide(15, 20, 1000, 0.01, both_correct=850)
    unpaired_m = examples_to_decide_unpaired(0.865, 0.87, 1000, 0.01)
    assert paired_m is not None and unpaired_m is not None
    assert unpaired_m > 3 * paired_m


def test_paired_bootstrap_of_identical_scores_keeps_a_resolution_interval() -> None:
    scores = [1.0, 0.0, 1.0, 1.0] * 100
    low, high = paired_bootstrap(scores, scores)
    bound = Z95**2 / (400 + Z95**2)  # 0/1 scores: the Wilson bound of no disagreement
    assert (low, high) == pytest.approx((-bound, bound))
    half = [s / 2 for s in scores]  # scores spanning 0.5: half the term
    assert paired_bootstrap(half, half) == pytest.approx((-bound / 2, bound / 2))
    assert paired_bootstrap(half, half, resolution=1.0) == pytest.approx((-bound, bound))


def test_paired_bootstrap_agrees_with_newcombe_on_right_and_wrong() -> None:
    rng = np.random.default_rng(3)
    base = rng.random(2000) < 0.88
    cand = base.copy()
    flip = rng.choice(2000, 90, replace=False)
    cand[flip[:60]] = False
    cand[flip[60:]] = True
    b, c = int((cand & ~base).sum()), int((~cand & base).sum())
    newcombe = newcombe_paired(b, c, 2000, both_correct=int((cand & base).sum()))
    boot = paired_bootstrap(cand.astype(float), base.astype(float), seed=1)
    assert boot == pytest.approx(newcombe, abs=0.002)
    assert boot == paired_bootstrap(cand.astype(float), base.astype(float), seed=1)


def test_paired_bootstrap_of_a_statistic_and_its_refusals() -> None:
    rng = np.random.default_rng(0)
    base = rng.random(300)
    cand = base + rng.normal(0.02, 0.05, 300)
    low, high = paired_bootstrap(cand, base, statistic=lambda x, y: float(np.median(x - y)))
    assert low < float(np.median(cand - base)) < high and low > 0
    # Far narrower than the unpaired spread of the scores themselves (pairing removes it).
    assert high - low < 0.2 * float(np.std(base))
    with pytest.raises(ValueError, match="same length"):
        paired_bootstrap([1.0, 0.0], [1.0])
    with pytest.raises(ValueError, match="two examples"):
        paired_bootstrap([1.0], [1.0])


def test_paired_bootstrap_covers_a_mean_difference() -> None:
    rng = np.random.default_rng(11)
    covered = 0
    for rep in range(60):
        base = rng.random(200)
        cand = base + rng.normal(0.01, 0.04, 200)
        low, high = paired_bootstrap(cand, base, resamples=400, seed=rep)
        covered += low <= 0.01 <= high
    assert covered >= 54  # 95% nominal: 57 expected of 60


def test_perplexity_ratio_from_paired_text_likelihoods() -> None:
    nll = [10.0, 12.0, 8.0, 20.0]
    tokens = [5, 6, 4, 10]
    assert perplexity_ratio(nll, nll, tokens) == (1.0, 1.0, 1.0)
    worse = [v + 0.05 * t for v, t in zip(nll, tokens, strict=True)]  # +0.05 nat per token
    assert perplexity_ratio(worse, nll, tokens) == pytest.approx((math.exp(0.05),) * 3)
    ratio, low, high = perplexity_ratio([10.0, 12.0, 8.0], [9.5, 12.5, 7.0], [5, 6, 4])
    assert ratio == pytest.approx(math.exp(1.0 / 15)) and low < ratio < high


def test_perplexity_ratio_interval_matches_a_paired_bootstrap() -> None:
    rng = np.random.default_rng(5)
    tokens = rng.integers(20, 200, 400)
    base = tokens * rng.normal(2.5, 0.3, 400)
    cand = base + tokens * rng.normal(0.02, 0.05, 400)
    ratio, low, high = perplexity_ratio(list(cand), list(base), list(tokens))
    idx = rng.integers(0, 400, size=(2000, 400))
    boots = np.exp((cand[idx] - base[idx]).sum(axis=1) / tokens[idx].sum(axis=1))
    assert (low, high) == pytest.approx(tuple(np.quantile(boots, [0.025, 0.975])), rel=2e-3)
    assert low < ratio < high


def test_perplexity_ratio_refusals() -> None:
    with pytest.raises(ValueError, match="one candidate and one baseline"):
        perplexity_ratio([1.0, 2.0], [1.0], [1, 1])
    with pytest.raises(ValueError, match="two texts"):
        perplexity_ratio([1.0], [1.0], [1])
    with pytest.raises(ValueError, match="one token"):
        perplexity_ratio([1.0, 1.0], [1.0, 1.0], [1, 0])


# --- the must-show of issue 28, simulated ------------------------------------------------------
#
# A pool of 20,000 examples; the baseline gets a given share right; the variant differs from it
# on a planted set of examples (deterministic flips), so its true difference is exact. Each
# evaluation seed draws an evaluation set from the pool.

POOL = 20_000


def planted(baseline_right: float, worse: int, better: int) -> tuple[np.ndarray, np.ndarray]:
    """(variant, baseline) right/wrong on the pool: ``worse`` right answers turned wrong,
    ``better`` wrong answers turned right."""
    base = np.zeros(POOL, dtype=bool)
    base[: round(baseline_right * POOL)] = True
    cand = base.copy()
    cand[np.flatnonzero(base)[:worse]] = False
    cand[np.flatnonzero(~base)[:better]] = True
    return cand, base


def decisions(
    pair: tuple[np.ndarray, np.ndarray], size: int, *, seeds: int = 20, tolerance: float = 0.01
) -> Counter[str]:
    cand, base = pair
    found: Counter[str] = Counter()
    for seed in range(seeds):
        idx = np.random.default_rng(seed).choice(POOL, size, replace=False)
        c, b = cand[idx], base[idx]
        interval = newcombe_paired(
            int((c & ~b).sum()), int((~c & b).sum()), size, both_correct=int((c & b).sum())
        )
        found[decide(*interval, tolerance)] += 1
    return found


WORSE_1_5 = planted(0.90, worse=400, better=100)  # -300 / 20,000: exactly 1.5 points worse
SAME = planted(0.90, worse=0, better=0)
SAME_BUT_DIFFERENT = planted(0.90, worse=200, better=200)  # 0 points, 2% disagreement


def test_the_planted_pools_are_what_they_say() -> None:
    for (cand, base), delta in ((WORSE_1_5, -0.015), (SAME, 0.0), (SAME_BUT_DIFFERENT, 0.0)):
        assert (int(cand.sum()) - int(base.sum())) / POOL == pytest.approx(delta, abs=1e-12)


@pytest.mark.parametrize("size", [360, 1000, 4000, 10_000])
def test_a_variant_planted_1_5_points_worse_is_never_within_1_point(size: int) -> None:
    found = decisions(WORSE_1_5, size)
    assert found["within"] == 0
    if size >= 10_000:
        assert found["below"] >= 19


@pytest.mark.parametrize("pair", [SAME, SAME_BUT_DIFFERENT], ids=["identical", "cancelling"])
def test_a_planted_0_point_variant_is_within_on_a_large_enough_pool(
    pair: tuple[np.ndarray, np.ndarray],
) -> None:
    assert decisions(pair, 4000)["within"] >= 19
    assert decisions(pair, 10_000)["within"] >= 19


def test_a_digits_sized_pool_says_undecided_where_it_cannot_decide() -> None:
    # Digits: 360 examples, baseline 99.44% right. A variant 1.5 points worse is never called
    # within; an identical one is undecided (no disagreement in 360 examples cannot show
    # +-1 point: that takes 381); a 0-point variant is never called below.
    worse = decisions(planted(0.9944, worse=340, better=40), 360)
    assert worse["within"] == 0 and worse["undecided"] >= 15
    assert decisions(planted(0.9944, worse=0, better=0), 360)["undecided"] == 20
    assert decisions(planted(0.9944, worse=50, better=50), 360)["below"] == 0


def test_staged_looks_decide_the_planted_variants() -> None:
    # Five looks of 2,000 examples from the pool at the O'Brien-Fleming z of each look.
    zs = alpha_spending(5)

    def staged(pair: tuple[np.ndarray, np.ndarray], seed: int) -> str:
        cand, base = pair
        order = np.random.default_rng(seed).permutation(POOL)
        verdict = "undecided"
        for k, z in enumerate(zs, start=1):
            c, b = cand[order[: 2000 * k]], base[order[: 2000 * k]]
            interval = newcombe_paired(
                int((c & ~b).sum()), int((~c & b).sum()), 2000 * k,
                both_correct=int((c & b).sum()), z=z,
            )  # fmt: skip
            verdict = decide(*interval, 0.01)
            if verdict != "undecided":
                break
        return verdict

    worse = Counter(staged(WORSE_1_5, seed) for seed in range(20))
    assert worse["within"] == 0 and worse["below"] >= 19
    for pair in (SAME, SAME_BUT_DIFFERENT):
        assert Counter(staged(pair, seed) for seed in range(20))["within"] >= 19
