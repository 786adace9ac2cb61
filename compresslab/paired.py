"""The statistics of a claim against the baseline: paired intervals, a three-way decision, looks.

A compressed model agrees with its baseline on most examples, so only the examples where they
disagree carry the difference: compared on the same examples (paired), the interval is several
times narrower than from two separate accuracies (unpaired). Plain functions of counts and
scores (no torch; numpy only inside :func:`paired_bootstrap`): :func:`wilson` (one
proportion), :func:`newcombe_paired` (a candidate's accuracy minus its baseline's on the same
examples) and :func:`newcombe_unpaired` (the labelled fallback), :func:`paired_bootstrap` (any
per-example metric), :func:`perplexity_ratio`, :func:`decide` (``within`` / ``below`` /
``undecided``) with :func:`examples_to_decide`, and :func:`alpha_spending` (the z of each look
when examples are added in stages). A difference is a fraction (0.01 is one point), and so is
a tolerance.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from statistics import NormalDist
from typing import Any, Literal

#: The two-sided 95% normal quantile.
Z95 = NormalDist().inv_cdf(0.975)

Decision = Literal["within", "below", "undecided"]

_NORMAL = NormalDist()
_EXAMPLES_LIMIT = 10**9  # the most examples examples_to_decide plans for


def wilson(successes: float, n: float, *, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``successes / n`` (Wilson 1927).

    Unlike the Wald interval it stays inside [0, 1] and is not empty at 0 or ``n`` successes:
    with none it is ``[0, z^2 / (n + z^2)]``. Counts may be fractional (for planning).

    Raises:
        ValueError: ``n`` is not positive, or ``successes`` is outside ``[0, n]``.
    """
    if n <= 0:
        raise ValueError(f"a proportion needs at least one example (n={n})")
    if not -1e-9 * n <= successes <= n * (1 + 1e-9):  # rounding of fractional counts passes
        raise ValueError(f"successes must lie in [0, n] (successes={successes}, n={n})")
    p = min(max(successes / n, 0.0), 1.0)
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_paired(
    b: float, c: float, n: float, *, both_correct: float, z: float = Z95
) -> tuple[float, float]:
    """Interval of the difference of two paired proportions (Newcombe 1998, method 10).

    For a candidate minus its baseline on the same ``n`` examples: ``b`` examples the candidate
    gets right and the baseline wrong, ``c`` the reverse, ``both_correct`` those both get right
    (the rest both get wrong). The difference is ``(b - c) / n``.

    The method combines the Wilson intervals of the two accuracies, corrected for their
    correlation (phi, with Newcombe's ``n/2`` continuity adjustment, set to 0 when a margin is
    empty) - Newcombe, Stat Med 17:2635-2650 (1998), the "square-and-add" interval of
    Fagerland, Lydersen and Laake (Stat Med 33:2850, 2014). Why this one: its coverage is
    close to nominal also with few or no discordant examples (the Wald interval collapses to
    [0, 0] when ``b = c = 0``; the exact conditional McNemar interval can be effectively
    one-sided; both cover poorly, as Newcombe shows); it is closed form and cheap (an interval
    per look, and a search over ``n`` in :func:`examples_to_decide`); Tango's score interval
    (Stat Med 17:891, 1998) performs as well but needs a root search per bound. With no
    discordant example and every answer right it is ``+-z^2 / (n + z^2)`` (about
    ``3.84 / (n + 3.84)``); with some answers wrong it moves both ways: on 360 examples with no
    discordant one it is +-1.06 points with none wrong, +-1.18 with 2 wrong, +-0.89 with 60.

    Raises:
        ValueError: counts that do not fit in ``n``.
    """
    a = both_correct
    d = n - a - b - c
    if n <= 0:
        raise ValueError(f"a paired difference needs at least one example (n={n})")
    if min(a, b, c) < 0 or d < -1e-9 * max(1.0, n):
        raise ValueError(
            f"paired counts must be non-negative and add up to at most n "
            f"(both_correct={a}, b={b}, c={c}, n={n})"
        )
    d = max(d, 0.0)
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson(a + b, n, z=z)
    l2, u2 = wilson(a + c, n, z=z)
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    cross = a * d - b * c
    if margins <= 0:
        phi = 0.0
    elif cross > 0:
        phi = max(cross - n / 2, 0.0) / math.sqrt(margins)
    else:
        phi = cross / math.sqrt(margins)
    theta = (b - c) / n
    lower = (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2
    upper = (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2
    low = theta - math.sqrt(max(lower, 0.0))
    return max(-1.0, low), min(1.0, theta + math.sqrt(max(upper, 0.0)))


def newcombe_unpaired(
    successes1: float, n1: float, successes2: float, n2: float, *, z: float = Z95
) -> tuple[float, float]:
    """Interval of ``successes1/n1 - successes2/n2`` for independent samples.

    Newcombe's hybrid score interval (Stat Med 17:873-890, 1998, method 10): the two Wilson
    intervals squared and added. The fallback for models evaluated on different examples, or
    without per-example outcomes; it ignores the agreement between a model and its baseline,
    so it is wider than :func:`newcombe_paired` on the same data.
    """
    p1, p2 = successes1 / n1, successes2 / n2
    l1, u1 = wilson(successes1, n1, z=z)
    l2, u2 = wilson(successes2, n2, z=z)
    theta = p1 - p2
    return (
        max(-1.0, theta - math.hypot(p1 - l1, u2 - p2)),
        min(1.0, theta + math.hypot(u1 - p1, p2 - l2)),
    )


def paired_bootstrap(
    candidate_scores: Sequence[float] | Any,
    baseline_scores: Sequence[float] | Any,
    *,
    statistic: Callable[[Any, Any], float] | None = None,
    resamples: int = 2000,
    seed: int = 0,
    z: float = Z95,
    resolution: float | None = None,
) -> tuple[float, float]:
    """Interval of a paired statistic (the mean difference by default) by a paired bootstrap.

    Each resample draws example indices with replacement and applies the same indices to both
    score vectors (sacreBLEU's paired bootstrap), so the agreement between the models is kept.
    For the mean difference the interval is BCa (Efron 1987: bias and acceleration from the
    jackknife, closed form for a mean); for another ``statistic(candidate, baseline)`` (numpy
    arrays in, a number out) it is the percentile interval.

    A resample cannot show a difference the sample lacks: identical score vectors would give
    [0, 0]. So the interval is never narrower than ``estimate +- resolution * z^2/(n + z^2)``:
    with no differing example in ``n``, the share that differ is below the Wilson bound
    ``z^2/(n + z^2)`` and each moves the mean by at most ``resolution``, the largest change of
    one example's score (default: the scores' observed span, 1 if none; for 0/1 scores the
    term is the bound ``3.84/(n + 3.84)``). It matters only when few examples differ.

    Raises:
        ValueError: vectors of different lengths, or fewer than two examples.
    """
    import numpy as np

    cand = np.asarray(candidate_scores, dtype=float)
    base = np.asarray(baseline_scores, dtype=float)
    if cand.ndim != 1 or cand.shape != base.shape:
        raise ValueError(
            f"paired scores must be two vectors of the same length "
            f"(candidate {cand.shape}, baseline {base.shape})"
        )
    n = cand.shape[0]
    if n < 2:
        raise ValueError("a bootstrap interval needs at least two examples")
    rng = np.random.default_rng(seed)
    boots = np.empty(resamples)
    if statistic is None:
        diff = cand - base
        estimate = float(diff.mean())
        rows = max(1, 2_000_000 // n)  # bounded memory per block of resamples
        for start in range(0, resamples, rows):
            stop = min(resamples, start + rows)
            boots[start:stop] = diff[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
        jackknife = (diff.sum() - diff) / (n - 1)
        low, high = _bca(boots, estimate, jackknife, z)
    else:
        estimate = float(statistic(cand, base))
        for i in range(resamples):
            idx = rng.integers(0, n, size=n)
            boots[i] = float(statistic(cand[idx], base[idx]))
        p = _NORMAL.cdf(z)
        low, high = float(np.quantile(boots, 1 - p)), float(np.quantile(boots, p))
    if resolution is None:
        span = float(max(cand.max(), base.max()) - min(cand.min(), base.min()))
        resolution = span if span > 0 else 1.0
    floor = resolution * z * z / (n + z * z)
    return min(low, estimate - floor), max(high, estimate + floor)


def _bca(boots: Any, estimate: float, jackknife: Any, z: float) -> tuple[float, float]:
    """The BCa interval's ends from bootstrap values and jackknife values of the statistic."""
    import numpy as np

    count = boots.shape[0]
    share = float((boots < estimate).mean() + 0.5 * (boots == estimate).mean())
    share = min(max(share, 1 / (count + 1)), count / (count + 1))
    bias = _NORMAL.inv_cdf(share)
    spread = jackknife.mean() - jackknife
    denom = 6 * float((spread**2).sum()) ** 1.5
    accel = float((spread**3).sum()) / denom if denom > 0 else 0.0

    def level(zq: float) -> float:
        return _NORMAL.cdf(bias + (bias + zq) / (1 - accel * (bias + zq)))

    return float(np.quantile(boots, level(-z))), float(np.quantile(boots, level(z)))


def perplexity_ratio(
    candidate_nll: Sequence[float],
    baseline_nll: Sequence[float],
    tokens: Sequence[int],
    *,
    z: float = Z95,
) -> tuple[float, float, float]:
    """Perplexity of a candidate over its baseline's on the same texts, with its interval.

    ``candidate_nll[i]`` and ``baseline_nll[i]`` are the summed negative log-likelihoods (nats)
    of text ``i``'s ``tokens[i]`` tokens. The log ratio is the per-token difference
    ``R = sum(d_i) / sum(t_i)`` with ``d_i = candidate_nll[i] - baseline_nll[i]``, a ratio
    estimator over texts whose variance is the texts' (clustered) one by the delta method,
    ``n/(n - 1) * sum((d_i - R t_i)^2) / (sum t_i)^2``: the tokens of a text are not taken as
    independent, and a text weighs by its tokens. Returns ``(exp(R), exp(R - z se),
    exp(R + z se))``; a bit-identical model gives exactly ``(1, 1, 1)``.

    Raises:
        ValueError: unequal lengths, fewer than two texts, or a text without tokens.
    """
    n = len(tokens)
    if not len(candidate_nll) == len(baseline_nll) == n:
        raise ValueError(
            f"a perplexity ratio needs one candidate and one baseline log-likelihood per text "
            f"(candidate {len(candidate_nll)}, baseline {len(baseline_nll)}, tokens {n})"
        )
    if n < 2:
        raise ValueError("a perplexity ratio's interval needs at least two texts")
    if min(tokens) <= 0:
        raise ValueError("every text needs at least one token")
    total = float(sum(tokens))
    diffs = [a - b for a, b in zip(candidate_nll, baseline_nll, strict=True)]
    log_ratio = sum(diffs) / total
    residual = sum((d - log_ratio * t) ** 2 for d, t in zip(diffs, tokens, strict=True))
    se = math.sqrt(n / (n - 1) * residual) / total
    return math.exp(log_ratio), math.exp(log_ratio - z * se), math.exp(log_ratio + z * se)


def decide(low: float, high: float, tolerance: float) -> Decision:
    """``within`` (``low >= -tolerance``), ``below`` (``high < -tolerance``) or ``undecided``.

    ``[low, high]`` is the interval of a difference candidate minus baseline (higher is
    better). For a ratio where lower is better (perplexity), pass ``1 - high, 1 - low``.
    """
    if tolerance < 0:
        raise ValueError(f"a tolerance is a non-negative difference (found {tolerance})")
    if low >= -tolerance:
        return "within"
    if high < -tolerance:
        return "below"
    return "undecided"


def examples_to_decide(
    b: int, c: int, n: int, tolerance: float, *, both_correct: int, z: float = Z95
) -> int | None:
    """How many examples in all would make :func:`newcombe_paired`'s interval decide.

    The discordance rates ``b/n``, ``c/n`` and the rate ``both_correct/n`` are held; the
    smallest ``m >= n`` whose interval is ``within`` or ``below`` is found by doubling, then
    bisection (the interval narrows as ``m`` grows). ``n`` when it is decided already; None
    when no number of examples decides it (the difference sits at ``-tolerance``), or when it
    would take more than a billion.
    """
    rates = (b / n, c / n, both_correct / n)

    def interval(m: float) -> tuple[float, float]:
        return newcombe_paired(rates[0] * m, rates[1] * m, m, both_correct=rates[2] * m, z=z)

    return _smallest_deciding(interval, n, tolerance, (b - c) / n)


def examples_to_decide_unpaired(
    candidate_accuracy: float, baseline_accuracy: float, n: int, tolerance: float, *, z: float = Z95
) -> int | None:
    """:func:`examples_to_decide` for :func:`newcombe_unpaired`, each model on ``m`` examples."""

    def interval(m: float) -> tuple[float, float]:
        return newcombe_unpaired(candidate_accuracy * m, m, baseline_accuracy * m, m, z=z)

    return _smallest_deciding(interval, n, tolerance, candidate_accuracy - baseline_accuracy)


def _smallest_deciding(
    interval: Callable[[float], tuple[float, float]], n: int, tolerance: float, delta: float
) -> int | None:
    def decided(m: int) -> bool:
        return decide(*interval(m), tolerance) != "undecided"

    if decided(n):
        return n
    if abs(delta + tolerance) < 1e-12:
        return None
    high = n
    while not decided(high):
        if high > _EXAMPLES_LIMIT:
            return None
        high *= 2
    low = high // 2  # undecided (the loop doubled past it)
    while high - low > 1:
        mid = (low + high) // 2
        if decided(mid):
            high = mid
        else:
            low = mid
    return high
