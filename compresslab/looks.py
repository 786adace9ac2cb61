"""The looks of a staged comparison: how many examples at each, and each look's z.

A comparison that adds examples while its decision is ``undecided`` looks at the data several
times; computing each look's interval with a fixed 1.96 would be wrong more often than 5%.
:func:`look_sizes` plans the looks (geometric steps up to the whole pool) and
:func:`alpha_spending` gives each look's z so that all the intervals hold together
(repeated confidence intervals). Plain functions (no torch); re-exported by
:mod:`compresslab.paired`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist
from typing import Literal

Spending = Literal["obrien-fleming", "pocock", "bonferroni"]

_NORMAL = NormalDist()
_Z_CEILING = 12.0  # the largest z a look is given (a look that spends nothing)
#: Standard errors of optimism in :func:`futile` (the difference is read this much better).
OPTIMISM = 2.0


def look_sizes(pool: int, *, first: int, looks: int, screen: int = 0) -> list[int]:
    """The examples seen at each look of a staged comparison, the last one the whole pool.

    ``looks`` looks from ``first`` examples to ``pool`` in geometric steps (each about the same
    factor larger than the one before: the interval's width falls by about the same factor
    at every look), rounded to whole examples; fewer when the pool is small (a look never
    repeats a size). ``screen`` (0: none) adds a cheap first look on that many examples when
    it is below ``first`` (the search's screening of clearly worse variants).

    Raises:
        ValueError: a size or count that is not positive.
    """
    if pool <= 0 or first <= 0 or looks <= 0 or screen < 0:
        raise ValueError(
            f"look sizes need a positive pool, first look and count (pool={pool}, "
            f"first={first}, looks={looks}, screen={screen})"
        )
    first = min(first, pool)
    if looks == 1 or first == pool:
        sizes = [pool]
    else:
        step = (pool / first) ** (1 / (looks - 1))
        sizes = [round(first * step**k) for k in range(looks - 1)] + [pool]
    if 0 < screen < sizes[0]:
        sizes.insert(0, screen)
    return sorted(set(sizes))


def alpha_spending(
    looks: int | Sequence[float], alpha: float = 0.05, *, spending: Spending = "obrien-fleming"
) -> list[float]:
    """The z of each look, for an error ``alpha`` over all the looks together.

    A caller that evaluates in stages (a first sample, then more examples while the decision
    is ``undecided``) and computes each stage's interval with a fixed 1.96 would be wrong more
    often than 5%. With the z returned here the intervals are repeated confidence intervals
    (Jennison and Turnbull, 1989): all of them cover the true difference together with
    probability ``1 - alpha``, whichever look stops.

    ``looks``: a number of equally spaced looks, or each look's share of the final number of
    examples (increasing, the last at most 1). ``spending``: ``obrien-fleming`` (the default:
    Lan and DeMets' 1983 spending function ``2 - 2 Phi(z_{1-alpha/4} / sqrt(t))`` per side,
    as in ldbounds and gsDesign; it spends almost nothing early, so the last look's z stays
    near 1.96 - 2.03 for five looks - and early looks stop only clear cases), ``pocock``
    (``alpha ln(1 + (e - 1) t)``: the same z at every look, about 2.41 for five), or
    ``bonferroni`` (``alpha / looks`` at each look: conservative, closed form). The spending
    boundaries are computed exactly for normal statistics with independent increments
    (Armitage, McPherson and Rowe 1969), by numerical integration of the continuation region.
    """
    times = [(k + 1) / looks for k in range(looks)] if isinstance(looks, int) else list(looks)
    if not times or any(b <= a for a, b in zip(times, times[1:], strict=False)):
        raise ValueError(f"looks must be a positive number or increasing shares (found {looks})")
    if times[0] <= 0 or times[-1] > 1:
        raise ValueError(f"each look's share of the examples must lie in (0, 1] (found {times})")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1) (found {alpha})")
    if spending == "bonferroni":
        return [_NORMAL.inv_cdf(1 - alpha / (2 * len(times)))] * len(times)
    return _spending_bounds(times, alpha, spending)


def _spent(t: float, alpha: float, spending: str) -> float:
    """Two-sided alpha spent by share ``t`` of the examples."""
    if spending == "obrien-fleming":
        return 2 * (2 - 2 * _NORMAL.cdf(_NORMAL.inv_cdf(1 - alpha / 4) / math.sqrt(t)))
    if spending == "pocock":
        return alpha * math.log(1 + (math.e - 1) * t)
    raise ValueError(f"unknown spending rule {spending!r}: obrien-fleming, pocock or bonferroni")


def _spending_bounds(times: list[float], alpha: float, spending: str) -> list[float]:
    # The sum S_k = Z_k sqrt(t_k) is a Brownian motion: its (defective) density on the
    # continuation region is carried from look to look on a grid, integrated by Simpson's rule,
    # and each look's bound is the one whose exit probability is the alpha spent since the
    # previous look (bisection).
    # A first look that spends (almost) nothing (O'Brien-Fleming at a small share) gets the
    # bisection's ceiling: it stops nothing, as intended.
    first = _spent(times[0], alpha, spending) / 2
    bounds = [_NORMAL.inv_cdf(1 - first) if first > 1e-15 else _Z_CEILING]
    grid = _grid(bounds[0] * math.sqrt(times[0]))
    mass = [
        w * _NORMAL.pdf(s / math.sqrt(times[0])) / math.sqrt(times[0]) for s, w in _simpson(grid)
    ]
    for previous, t in zip(times, times[1:], strict=False):
        target = _spent(t, alpha, spending) - _spent(previous, alpha, spending)
        sd, root = math.sqrt(t - previous), math.sqrt(t)
        low, high = 0.0, _Z_CEILING
        for _ in range(60):
            mid = (low + high) / 2
            out = sum(
                m * (_NORMAL.cdf((-mid * root - u) / sd) + _NORMAL.cdf((u - mid * root) / sd))
                for u, m in zip(grid, mass, strict=True)
            )
            low, high = (mid, high) if out > target else (low, mid)
        bounds.append((low + high) / 2)
        new_grid = _grid(bounds[-1] * root)
        mass = [
            w * sum(m * _NORMAL.pdf((s - u) / sd) for u, m in zip(grid, mass, strict=True)) / sd
            for s, w in _simpson(new_grid)
        ]
        grid = new_grid
    return bounds


def _grid(half: float, points: int = 161) -> list[float]:
    step = 2 * half / (points - 1)
    return [-half + i * step for i in range(points)]


def _simpson(grid: list[float]) -> list[tuple[float, float]]:
    """Each grid point with its weight in Simpson's rule."""
    step, last = grid[1] - grid[0], len(grid) - 1
    return [
        (s, step / 3 * (1 if i in (0, last) else 4 if i % 2 else 2)) for i, s in enumerate(grid)
    ]


def futile(
    *,
    delta: float,
    low: float,
    high: float,
    z: float,
    seen: int,
    pool: int,
    z_last: float,
    tolerance: float,
) -> bool:
    """Whether adding the rest of the pool could not make an ``undecided`` difference ``within``.

    The interval ``[low, high]`` (at ``z``, on ``seen`` examples) is projected to the whole
    ``pool`` at the last look's ``z_last``: its half-width shrinks like ``1/sqrt(n)``. The
    difference is taken two standard errors better than seen (an optimistic reading: about one
    time in forty the truth is better still, so a good variant is rarely dropped on a small
    early look's bad luck). If even then the projected interval's lower end
    stays below ``-tolerance``, the comparison stops: the variant stays ``undecided`` (never
    called within), and the examples it would have cost are saved. Stopping for futility never
    claims anything, so it does not change the error rate of the decisions (a non-binding
    futility rule).
    """
    if seen >= pool or z <= 0:
        return False
    half = (high - low) / 2
    standard_error = half / z
    projected = standard_error * z_last * math.sqrt(seen / pool)
    return delta + OPTIMISM * standard_error - projected < -tolerance
