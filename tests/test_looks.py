"""The looks of a staged comparison: their sizes, and z bounds checked against published tables."""

from __future__ import annotations

import numpy as np
import pytest

from compresslab.looks import Spending, alpha_spending, futile, look_sizes
from compresslab.paired import Z95, decide, newcombe_paired


def test_looks_grow_geometrically_to_the_whole_pool_after_a_screening_look() -> None:
    assert look_sizes(4000, first=400, looks=4, screen=200) == [200, 400, 862, 1857, 4000]
    # A pool smaller than the first look: one look on all of it (plus the screening look).
    assert look_sizes(360, first=400, looks=4, screen=200) == [200, 360]
    assert look_sizes(360, first=400, looks=4) == [360]
    assert look_sizes(1000, first=1000, looks=4) == [1000]
    # A screening look at or above the first look adds nothing; tiny pools never repeat a size.
    assert look_sizes(4000, first=400, looks=2, screen=400) == [400, 4000]
    assert look_sizes(5, first=2, looks=6) == sorted(set(look_sizes(5, first=2, looks=6)))
    assert look_sizes(5, first=2, looks=6)[-1] == 5
    with pytest.raises(ValueError, match="positive pool"):
        look_sizes(0, first=10, looks=2)


def test_futility_projects_the_interval_to_the_whole_pool_optimistically() -> None:
    # -2 points +- 1 on 1,000 of 10,000: at the whole pool +-0.32. Two standard errors better
    # (-0.98) minus 0.32 is -1.30, below -1: futile. At -1.6 it is -0.90: it may still show.
    kw = {"z": 1.96, "seen": 1000, "pool": 10_000, "z_last": 1.96, "tolerance": 0.01}
    assert futile(delta=-0.02, low=-0.03, high=-0.01, **kw)
    assert not futile(delta=-0.016, low=-0.026, high=-0.006, **kw)
    # Nothing is futile once the pool is used up (the last look decides or stays undecided).
    assert not futile(delta=-0.5, low=-0.6, high=-0.4, **{**kw, "seen": 10_000})


def test_a_first_look_that_spends_nothing_stops_nothing() -> None:
    # O'Brien-Fleming at 1% of the pool spends less than 1e-15: its z is the ceiling, and the
    # later looks still spend the whole alpha.
    zs = alpha_spending([0.01, 0.1, 0.215, 0.46, 1.0], spending="obrien-fleming")
    assert zs[0] == pytest.approx(12.0)
    assert zs[-1] == pytest.approx(1.965, abs=0.01)


# Lan-DeMets spending, five equally spaced looks, two-sided alpha 0.05: O'Brien-Fleming type
# 4.8769, 3.3569, 2.6803, 2.2898, 2.0310 and Pocock type 2.4380 ... 2.3860 (ldbounds and
# gsDesign's tables); four looks at two-sided 0.10 match SeqBounds.jl's README (one-sided 0.05:
# 3.74955, 2.53993, 2.01604, 1.72014; the other side's share is negligible).
@pytest.mark.parametrize(
    ("looks", "alpha", "spending", "expected"),
    [
        (5, 0.05, "obrien-fleming", [4.8769, 3.3569, 2.6803, 2.2898, 2.0310]),
        (5, 0.05, "pocock", [2.4380, 2.4268, 2.4102, 2.3966, 2.3860]),
        (4, 0.10, "obrien-fleming", [3.7496, 2.5399, 2.0160, 1.7201]),
        (3, 0.05, "bonferroni", [2.3940, 2.3940, 2.3940]),
    ],
)
def test_alpha_spending_reproduces_published_bounds(
    looks: int, alpha: float, spending: Spending, expected: list[float]
) -> None:
    got = alpha_spending(looks, alpha, spending=spending)
    assert got == pytest.approx(expected, abs=2e-4)


def test_alpha_spending_spends_alpha_exactly_at_unequal_looks() -> None:
    # Checked independently of the integration: the z statistics at the looks are a Brownian
    # motion's scaled values; simulate 400,000 of them and count those that cross a bound.
    times = np.array([0.1, 0.3, 0.6, 1.0])
    rng = np.random.default_rng(2)
    steps = rng.normal(size=(400_000, 4)) * np.sqrt(np.diff(times, prepend=0.0))
    z = np.cumsum(steps, axis=1) / np.sqrt(times)
    spendings: tuple[Spending, ...] = ("obrien-fleming", "pocock")
    for spending in spendings:
        bounds = np.array(alpha_spending(list(times), 0.05, spending=spending))
        crossed = float((np.abs(z) >= bounds).any(axis=1).mean())
        assert crossed == pytest.approx(0.05, abs=0.0015)
    assert alpha_spending(1) == pytest.approx([Z95])
    with pytest.raises(ValueError, match="increasing"):
        alpha_spending([0.5, 0.5])
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        alpha_spending([0.5, 1.5])


def test_repeated_looks_at_a_fixed_z_claim_within_too_often() -> None:
    # True difference just below -1 point (5% discordant): a "within" claim is wrong. Ten
    # looks of 1,000 examples, stopping at the first decision: a fixed 1.96 at every look is
    # wrong far more often than one side's 2.5%; the spending bounds keep it there.
    probs = [0.87, 0.02, 0.0301, 0.0799]

    def wrong_rate(zs: list[float]) -> float:
        rng = np.random.default_rng(1)
        wrong = 0
        for _ in range(600):
            total = np.zeros(4)
            for z in zs:
                total += rng.multinomial(1000, probs)
                n = total.sum()
                verdict = decide(
                    *newcombe_paired(total[1], total[2], n, both_correct=total[0], z=z), 0.01
                )
                if verdict != "undecided":
                    break
            wrong += verdict == "within"
        return wrong / 600

    assert wrong_rate([Z95] * 10) > 0.06
    assert wrong_rate(alpha_spending(10)) < 0.04
