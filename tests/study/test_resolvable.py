"""Whether a recipe's tolerance can be resolved with its evaluation pool, said before any work.

A variant that matches the baseline (true difference 0) but disagrees with it on a share ``d``
of the examples, half each way, gets Newcombe's paired interval; the tolerance is resolvable
when that interval, at the last look's z, is narrower than the tolerance (the variant would be
decided ``within`` on the whole pool).
"""

from __future__ import annotations

import math
from statistics import NormalDist

import pytest

from compresslab.looks import alpha_spending, look_sizes
from compresslab.paired import newcombe_paired
from compresslab.recipe.schema_search import AccuracyEvaluation, Tolerance
from compresslab.study.resolvable import (
    TYPICAL_DISCORDANCE,
    paired_half_width,
    resolvability,
)

Z95 = NormalDist().inv_cdf(0.975)
ONE_LOOK = AccuracyEvaluation(looks=1)
ONE_POINT = Tolerance(absolute=0.01)


def wilson_by_hand(successes: float, n: float, z: float) -> tuple[float, float]:
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def test_digits_sized_pool_cannot_resolve_one_point() -> None:
    # 360 images, baseline 99.44%: a variant can disagree on at most 2 x 0.56% of them and
    # keep a zero difference, and even so its interval is wider than one point.
    res = resolvability(
        pool=360,
        tolerance=ONE_POINT,
        evaluation=AccuracyEvaluation(),
        baseline_accuracy=0.9944,
        task="digits",
    )
    assert not res.resolvable and res.level == "warning"
    assert res.looks == (360,) and res.z == pytest.approx(Z95)  # one look: the pool < 400
    assert res.discordance == TYPICAL_DISCORDANCE == 0.02
    assert res.discordance_used == pytest.approx(2 * (1 - 0.9944))
    d = res.discordance_used
    low, high = newcombe_paired(
        d / 2 * 360, d / 2 * 360, 360, both_correct=(0.9944 - d / 2) * 360, z=Z95
    )
    assert res.half_width == pytest.approx(-low) == pytest.approx(high)
    assert 0.012 < res.half_width < 0.02
    # A pool that resolves it, and the next smaller one that does not.
    need = res.pool_for_tolerance
    assert need is not None and need > 360
    at = resolvability(
        pool=need, tolerance=ONE_POINT, evaluation=AccuracyEvaluation(), baseline_accuracy=0.9944
    )
    below = resolvability(
        pool=need - 1,
        tolerance=ONE_POINT,
        evaluation=AccuracyEvaluation(),
        baseline_accuracy=0.9944,
    )
    assert at.resolvable and not below.resolvable
    assert res.pool_for_half_tolerance is not None and res.pool_for_half_tolerance > 2 * need
    message = res.message()
    assert message.startswith("tolerance 1 point absolute cannot be resolved")
    for figure in ("360 examples", "99.44%", f"±{res.half_width * 100:.2f}", f"{need:,}"):
        assert figure in message, (figure, message)
    assert "1.12%" in message and "2% typical" in message  # the discordance, capped
    # The fix: digits' pool cannot grow; widen the tolerance, or accept `undecided` results.
    assert "cannot grow" in message and "search.tolerance" in message
    assert "undecided" in message and "on_unresolvable: error" in message


def test_a_4000_example_pool_resolves_one_point_checked_by_hand() -> None:
    n, p, d = 4000, 0.90, 0.02
    res = resolvability(
        pool=n, tolerance=ONE_POINT, evaluation=ONE_LOOK, baseline_accuracy=p, discordance=d
    )
    # Newcombe's method 10 by hand: 40 examples each way, 3560 both right, 360 both wrong.
    a, b, c, both_wrong = 3560.0, 40.0, 40.0, 360.0
    low1, up1 = wilson_by_hand(a + b, n, Z95)
    phi = (a * both_wrong - b * c - n / 2) / math.sqrt(
        (a + b) * (c + both_wrong) * (a + c) * (b + both_wrong)
    )
    assert phi == pytest.approx(0.8875)
    lower = math.sqrt((p - low1) ** 2 - 2 * phi * (p - low1) * (up1 - p) + (up1 - p) ** 2)
    assert res.half_width == pytest.approx(lower, rel=1e-9)
    assert res.half_width == pytest.approx(0.00447, abs=1e-5)  # ±0.45 point
    assert res.resolvable and res.level == "info"
    need, half = res.pool_for_tolerance, res.pool_for_half_tolerance
    assert need is not None and half is not None and need < half <= n  # ±0.5 point too
    message = res.message()
    assert "\n" not in message
    assert message.startswith("tolerance 1 point absolute is resolvable")
    assert "4,000 examples" in message and "±0.45 point" in message


def test_the_last_look_z_of_the_staged_comparison() -> None:
    evaluation = AccuracyEvaluation()  # 400 first, 4 looks, Pocock
    res = resolvability(
        pool=4000, tolerance=ONE_POINT, evaluation=evaluation, baseline_accuracy=0.9
    )
    sizes = look_sizes(4000, first=400, looks=4)
    z = alpha_spending([s / 4000 for s in sizes], spending="pocock")[-1]
    assert res.looks == tuple(sizes) and res.z == pytest.approx(z) and res.z > Z95
    low, _ = newcombe_paired(40, 40, 4000, both_correct=3560, z=z)
    assert res.half_width == pytest.approx(-low)
    assert res.resolvable and "4 looks" in res.message()


def test_a_relative_tolerance_is_a_share_of_the_baseline() -> None:
    res = resolvability(
        pool=4000,
        tolerance=Tolerance(relative=0.02),
        evaluation=ONE_LOOK,
        baseline_accuracy=0.5,
    )
    assert res.tolerance == pytest.approx(0.01)
    assert "2% relative" in res.message()


def test_unknown_baseline_is_assumed_the_least_favourable_and_said() -> None:
    res = resolvability(pool=360, tolerance=ONE_POINT, evaluation=ONE_LOOK, baseline_accuracy=None)
    assert res.baseline_source == "assumed"
    widest = max(
        paired_half_width(360, baseline_accuracy=p / 1000, discordance=0.02, z=Z95)
        for p in range(500, 1000)
    )
    assert res.half_width == pytest.approx(widest)
    assert "assumed" in res.message() and "not known" in res.message()


def test_no_disagreement_still_leaves_the_score_interval() -> None:
    # bf16: no discordant example; with every answer right the interval is +-z^2/(n + z^2).
    half = paired_half_width(380, baseline_accuracy=1.0, discordance=0.0, z=Z95)
    assert half == pytest.approx(Z95**2 / (380 + Z95**2), rel=1e-6)


def test_a_zero_tolerance_is_never_resolvable() -> None:
    res = resolvability(
        pool=1000, tolerance=Tolerance(absolute=0.0), evaluation=ONE_LOOK, baseline_accuracy=0.9
    )
    assert not res.resolvable
    assert res.pool_for_tolerance is None and res.pool_for_half_tolerance is None
    assert "no pool" in res.message()


@pytest.mark.parametrize(
    ("task", "option"),
    [
        ("minilm-wordnet", "extra_test_per_class"),
        ("smollm2", "questions"),
        ("causal_lm", "questions"),
        ("fashion-mnist", "test_size"),
    ],
)
def test_the_fix_names_the_task_option_that_grows_the_pool(task: str, option: str) -> None:
    res = resolvability(
        pool=400, tolerance=ONE_POINT, evaluation=ONE_LOOK, baseline_accuracy=0.87, task=task
    )
    assert not res.resolvable and res.pool_option == option
    assert f"task.options.{option}" in res.message()


def test_to_dict_holds_the_figures_and_the_message() -> None:
    res = resolvability(pool=360, tolerance=ONE_POINT, evaluation=ONE_LOOK, baseline_accuracy=0.99)
    data = res.to_dict()
    assert data["pool"] == 360 and data["resolvable"] is False and data["level"] == "warning"
    assert data["half_width"] == res.half_width and data["message"] == res.message()
    assert data["looks"] == [360] and data["baseline_source"] == "measured"
