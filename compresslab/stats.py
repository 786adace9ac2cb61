"""The statistics every figure's interval comes from (Student t intervals, paired ratios)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

# Two-sided 95% Student t quantiles by degrees of freedom (1..30); 1.96 beyond.
_T95 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t95(dof: int) -> float:
    """Two-sided 95% Student t quantile for ``dof`` degrees of freedom."""
    if dof < 1:
        raise ValueError("a confidence interval needs at least two windows")
    return _T95[dof - 1] if dof <= len(_T95) else 1.96


def ci95_halfwidth(values: Sequence[float]) -> float:
    """Half-width of the 95% confidence interval of the mean of ``values``."""
    if len(values) < 2:
        return math.inf
    return t95(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))


def cv(values: Sequence[float]) -> float:
    """Coefficient of variation (sample standard deviation / mean); ``inf`` below two values."""
    if len(values) < 2:
        return math.inf
    return statistics.stdev(values) / statistics.fmean(values)


@dataclass(frozen=True)
class RatioInterval:
    """A ratio estimated from paired measurements, with its 95% confidence interval.

    The pairs' log ratios are averaged (a ratio's noise is multiplicative), so ``ratio`` is
    their geometric mean and ``[low, high]`` the back-transformed Student t interval.
    """

    ratio: float
    low: float
    high: float
    pairs: int

    @property
    def halfwidth_rel(self) -> float:
        """Half the interval's width relative to the ratio (the precision reached)."""
        return (self.high - self.low) / (2 * self.ratio)

    def to_dict(self) -> dict[str, float | int]:
        """JSON-able form."""
        return {
            "ratio": self.ratio,
            "ci95_low": self.low,
            "ci95_high": self.high,
            "pairs": self.pairs,
        }


def paired_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> RatioInterval:
    """The ratio ``numerator / denominator`` from pairs measured side by side.

    Raises:
        ValueError: fewer than two pairs, unequal lengths, or a value that is not positive.
    """
    if len(numerators) != len(denominators):
        raise ValueError("a paired ratio needs as many numerators as denominators")
    if len(numerators) < 2:
        raise ValueError("a paired ratio's interval needs at least two pairs")
    if min(*numerators, *denominators) <= 0:
        raise ValueError("a ratio of energies needs positive values")
    logs = [math.log(a / b) for a, b in zip(numerators, denominators, strict=True)]
    mean = statistics.fmean(logs)
    half = ci95_halfwidth(logs)
    return RatioInterval(math.exp(mean), math.exp(mean - half), math.exp(mean + half), len(logs))
