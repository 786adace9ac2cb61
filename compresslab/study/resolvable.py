"""Before any work: can the recipe's accuracy tolerance be resolved with its evaluation pool?

A variant is compared with the baseline on the same examples, in looks
(``search.evaluation``), by Newcombe's paired interval of the difference
(:func:`compresslab.paired.newcombe_paired`); it is called ``within`` only when the interval's
lower end is at or above minus the tolerance. How narrow that interval can get depends on the
pool (``len(task.eval_labels)``), on how often the variant and the baseline disagree, on the
baseline's accuracy and on the last look's z (:func:`compresslab.paired.alpha_spending`).

The check takes the friendliest variant there is: its true difference is 0, and it disagrees
with the baseline on a share ``d`` of the examples, half each way. The tolerance is
*resolvable* when even that variant would be decided ``within`` on the whole pool, i.e. when
its interval's half-width at the last look is at most the tolerance; otherwise every variant
near the baseline ends ``undecided`` (or worse, a claim rests on a decision that is a coin
flip). ``d`` defaults to :data:`TYPICAL_DISCORDANCE` (2%): measured on the shipped recipes
(issue 28), bf16 variants disagree with their baseline on almost no example, int8 and NF4
ones near the tolerance on a few percent (dynamic int8 MiniLM: 16-18 of 400 texts). A variant
cannot disagree more than twice the baseline's errors and keep a zero difference, so ``d`` is
capped there (digits at 99.44%: 1.12%).

The baseline's accuracy is the measured one where it is known (the search measures it before
its first trial; the gate takes its baseline file's, or the study's); otherwise the least
favourable from 50% to 100% is assumed, and the message says so.

:func:`resolvability` computes the :class:`Resolvability` record;
:func:`~.before_work.announce` says it (one info line, or a warning with the numbers and the
fixes) or raises an error (exit code 2) with ``search.evaluation.on_unresolvable:
error`` (:mod:`.before_work`: what ``compresslab search`` and ``compresslab check`` call).
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from compresslab.looks import alpha_spending, look_sizes
from compresslab.paired import Z95, newcombe_paired
from compresslab.recipe.schema_search import AccuracyEvaluation, Tolerance

#: The share of examples on which a variant is assumed to disagree with its baseline (half
#: each way): int8 and NF4 variants near a 1-point tolerance measured a few percent; bf16
#: almost none (issue 28's measurements on the shipped recipes).
TYPICAL_DISCORDANCE = 0.02

#: The option of each built-in task that makes its evaluation pool larger (digits' is fixed:
#: 360 of its 1,797 images). ``minilm-wordnet``: held-out glosses the head never saw, per
#: class (raising ``test_per_class`` would refit the head, and so change the baseline).
POOL_OPTIONS: dict[str, str] = {
    "minilm-wordnet": "extra_test_per_class",
    "smollm2": "questions",
    "causal_lm": "questions",
    "fashion-mnist": "test_size",
}
#: Tasks whose evaluation pool cannot grow.
FIXED_POOLS = ("digits",)

BaselineSource = Literal["measured", "study", "baseline file", "assumed"]
Level = Literal["info", "warning", "error"]

_POOL_LIMIT = 10**9  # the largest pool a search for the needed pool considers
_ASSUMED_RANGE = [p / 1000 for p in range(500, 1000)]  # baselines tried when none is known


@dataclass(frozen=True)
class Resolvability:
    """Whether a tolerance can be resolved on a pool, and what pool would resolve it.

    Differences and tolerances are fractions (0.01 is one accuracy point).

    Attributes:
        pool: examples a variant is compared on, paired with the baseline, at the last look.
        tolerance: the tolerance as an absolute drop (a relative one times the baseline).
        tolerance_text: the tolerance as the recipe gives it, e.g. ``1 point absolute``.
        tolerance_kind: ``absolute`` or ``relative`` (the recipe's key).
        baseline_accuracy: the baseline's accuracy used (measured, stored or assumed).
        baseline_source: ``measured`` (before this search's first trial), ``study`` (stored
            by an earlier search), ``baseline file`` (the gate's) or ``assumed`` (the least
            favourable from 50% to 100%).
        discordance: the assumed share of examples on which a variant disagrees.
        discordance_used: the share used: ``discordance``, capped at twice the baseline's
            share of errors (a zero difference needs as many wins as losses).
        looks: the examples seen at each look (``search.evaluation``).
        z: the z of the last look's interval.
        half_width: the half-width of the paired interval of a variant with no true
            difference and ``discordance_used`` at the last look.
        pool_for_tolerance: the smallest pool whose half-width is at most the tolerance
            (None: none up to a billion examples, e.g. a zero tolerance).
        pool_for_half_tolerance: the same for half the tolerance (what a variant half a
            tolerance below the baseline needs to be decided).
        task: the task's name (the recipe's ``task.name``; empty for an entrypoint).
        pool_option: the task option that makes the pool larger, if the task has one.
        on_unresolvable: ``warn`` or ``error`` (``search.evaluation.on_unresolvable``).
        metric: the task's metric (for ``macro_f1`` the accuracy's interval is a guide).
    """

    pool: int
    tolerance: float
    tolerance_text: str
    tolerance_kind: Literal["absolute", "relative"]
    baseline_accuracy: float
    baseline_source: BaselineSource
    discordance: float
    discordance_used: float
    looks: tuple[int, ...]
    z: float
    half_width: float
    pool_for_tolerance: int | None
    pool_for_half_tolerance: int | None
    task: str = ""
    pool_option: str | None = None
    on_unresolvable: Literal["warn", "error"] = "warn"
    metric: str = "accuracy"

    @property
    def resolvable(self) -> bool:
        """Whether a variant with no true difference would be decided ``within`` on the pool."""
        return self.tolerance > 0 and self.half_width <= self.tolerance

    @property
    def level(self) -> Level:
        """``info`` (resolvable), ``warning``, or ``error`` (``on_unresolvable: error``)."""
        if self.resolvable:
            return "info"
        return "error" if self.on_unresolvable == "error" else "warning"

    def message(self) -> str:
        """One line: the figures, and (when it cannot be resolved) what to change."""
        head = (
            f"tolerance {self.tolerance_text} "
            f"{'is resolvable' if self.resolvable else 'cannot be resolved'} on the "
            f"evaluation pool of {self.pool:,} examples: a variant as accurate as the baseline "
            f"({self._baseline()}) that disagrees with it on {self._discordance()} gets a "
            f"paired interval of ±{_points(self.half_width)} at the last look ({self._looks()})"
        )
        if self.metric != "accuracy":
            head += f" (accuracy's interval, as a guide for {self.metric})"
        if self.resolvable:
            return f"{head}; {self._needs()}"
        if self.tolerance <= 0:
            return (
                f"{head}: no pool decides a zero tolerance. Fix: widen search.tolerance "
                "(e.g. absolute: 0.01), or accept `undecided` results"
            )
        return (
            f"{head}, wider than the tolerance: it would stay `undecided`. "
            f"{self._needs()}. {self._fixes()}"
        )

    def to_dict(self) -> dict[str, Any]:
        """The figures as plain JSON values, with ``resolvable``, ``level`` and ``message``."""
        data = asdict(self)
        data["looks"] = list(self.looks)
        data.update(resolvable=self.resolvable, level=self.level, message=self.message())
        return data

    def _baseline(self) -> str:
        accuracy = f"{self.baseline_accuracy * 100:.2f}%"
        if self.baseline_source == "assumed":
            return f"not known yet: assumed {accuracy}, the least favourable"
        said = {"study": "stored by the study", "baseline file": "from the baseline file"}
        return f"{accuracy}, {said.get(self.baseline_source, self.baseline_source)}"

    def _discordance(self) -> str:
        used = f"{self.discordance_used * 100:.3g}% of the examples"
        if self.discordance_used < self.discordance - 1e-12:
            return (
                f"{used} ({self.discordance * 100:.3g}% typical, capped at twice the "
                f"baseline's {(1 - self.baseline_accuracy) * 100:.3g}% errors)"
            )
        return used

    def _looks(self) -> str:
        if len(self.looks) == 1:
            return f"one look, z {self.z:.2f}"
        return f"{len(self.looks)} looks from {self.looks[0]:,}, z {self.z:.2f}"

    def _needs(self) -> str:
        def pool(n: int | None) -> str:
            return "more than a billion examples" if n is None else f"{n:,} examples"

        return (
            f"±{_points(self.tolerance)} needs {pool(self.pool_for_tolerance)}, "
            f"±{_points(self.tolerance / 2)} {pool(self.pool_for_half_tolerance)}"
        )

    def _fixes(self) -> str:
        need = f"{self.pool_for_tolerance:,}" if self.pool_for_tolerance else "more"
        if self.pool_option:
            grow = f"raise the pool to {need} examples or more (task.options.{self.pool_option})"
        elif self.task in FIXED_POOLS:
            grow = f"the pool of task '{self.task}' cannot grow"
        else:
            grow = f"give the task {need} evaluation examples or more"
        # The recipe's value that the pool resolves, rounded up to a tenth of a point.
        if self.tolerance_kind == "absolute":
            wider = f"absolute: {math.ceil(self.half_width * 1000) / 1000:g}"
        else:
            share = self.half_width / max(self.baseline_accuracy, 1e-12)
            wider = f"relative: {math.ceil(share * 1000) / 1000:g}"
        switch = (
            "set search.evaluation.on_unresolvable: warn to go on"
            if self.on_unresolvable == "error"
            else "search.evaluation.on_unresolvable: error makes this an error"
        )
        return (
            f"Fix: {grow}; widen search.tolerance ({wider} or more); or accept `undecided` "
            f"results ({switch})"
        )


def _points(fraction: float) -> str:
    value = fraction * 100
    text = f"{value:.2f}".rstrip("0").rstrip(".") if value < 10 else f"{value:.3g}"
    return f"{text} point{'' if value <= 1 + 1e-9 else 's'}"


def paired_half_width(
    pool: float, *, baseline_accuracy: float, discordance: float, z: float = Z95
) -> float:
    """Half-width of the paired interval of a variant with no true difference.

    The variant disagrees with the baseline on a share ``discordance`` of ``pool`` examples,
    half each way (capped at twice the baseline's errors and twice its successes); the
    interval is :func:`compresslab.paired.newcombe_paired` at ``z`` (symmetric here).
    """
    p = baseline_accuracy
    d = _capped(discordance, p)
    low, _ = newcombe_paired(d / 2 * pool, d / 2 * pool, pool, both_correct=(p - d / 2) * pool, z=z)
    return -low


def _capped(discordance: float, baseline_accuracy: float) -> float:
    return max(0.0, min(discordance, 2 * (1 - baseline_accuracy), 2 * baseline_accuracy))


def last_z(
    pool: int, evaluation: AccuracyEvaluation, screen: int = 0
) -> tuple[tuple[int, ...], float]:
    """The look sizes of ``evaluation`` on ``pool`` examples, and the last look's z.

    ``screen``: ``search.screen_examples`` (the search's screening look is one of its looks,
    as in :func:`compresslab.bench.looks_of`).
    """
    sizes = tuple(
        look_sizes(pool, first=evaluation.first_examples, looks=evaluation.looks, screen=screen)
    )
    return sizes, _spending_z(tuple(s / pool for s in sizes), evaluation.spending)


@functools.lru_cache(maxsize=512)
def _spending_z(times: tuple[float, ...], spending: Any) -> float:
    return alpha_spending(list(times), spending=spending)[-1]


def resolvability(
    *,
    pool: int,
    tolerance: Tolerance,
    evaluation: AccuracyEvaluation,
    baseline_accuracy: float | None,
    baseline_source: BaselineSource = "measured",
    discordance: float = TYPICAL_DISCORDANCE,
    task: str = "",
    metric: str = "accuracy",
    screen_examples: int = 0,
) -> Resolvability:
    """Whether ``tolerance`` can be resolved on ``pool`` examples (see the module's docstring).

    Args:
        pool: the task's evaluation pool (``len(task.eval_labels)``).
        tolerance: the recipe's ``search.tolerance``.
        evaluation: the recipe's ``search.evaluation`` (looks and spending: the last z).
        baseline_accuracy: the baseline's accuracy, or None when it is not known (the least
            favourable from 50% to 100% is assumed: ``baseline_source`` becomes ``assumed``).
        baseline_source: where ``baseline_accuracy`` comes from, for the message.
        discordance: the share of examples on which a variant disagrees with the baseline.
        task: the recipe's task name (to name the option that grows the pool).
        metric: the task's metric.
        screen_examples: ``search.screen_examples`` (its screening look is one of the looks).

    Raises:
        ValueError: a pool that is not positive, or a discordance outside [0, 1].
    """
    if pool <= 0:
        raise ValueError(f"the evaluation pool must hold at least one example (pool={pool})")
    if not 0 <= discordance <= 1:
        raise ValueError(f"discordance is a share of examples in [0, 1] (found {discordance})")
    looks, z = last_z(pool, evaluation, screen_examples)

    def drop(p: float) -> float:
        if tolerance.absolute is not None:
            return tolerance.absolute
        assert tolerance.relative is not None
        return tolerance.relative * p

    if baseline_accuracy is None:
        baseline_source = "assumed"
        # The least favourable baseline: the widest interval for its tolerance.
        baseline_accuracy = max(
            _ASSUMED_RANGE,
            key=lambda p: (
                paired_half_width(pool, baseline_accuracy=p, discordance=discordance, z=z)
                / max(drop(p), 1e-12)
            ),
        )
    p = min(max(float(baseline_accuracy), 0.0), 1.0)
    t = drop(p)
    return Resolvability(
        pool=int(pool),
        tolerance=t,
        tolerance_text=_tolerance_text(tolerance, t, p),
        tolerance_kind="absolute" if tolerance.absolute is not None else "relative",
        baseline_accuracy=p,
        baseline_source=baseline_source,
        discordance=discordance,
        discordance_used=_capped(discordance, p),
        looks=looks,
        z=z,
        half_width=paired_half_width(pool, baseline_accuracy=p, discordance=discordance, z=z),
        pool_for_tolerance=_pool_for(t, p, discordance, evaluation, screen_examples),
        pool_for_half_tolerance=_pool_for(t / 2, p, discordance, evaluation, screen_examples),
        task=task,
        pool_option=POOL_OPTIONS.get(task),
        on_unresolvable=evaluation.on_unresolvable,
        metric=metric,
    )


def _tolerance_text(tolerance: Tolerance, absolute: float, baseline: float) -> str:
    if tolerance.absolute is not None:
        return f"{_points(absolute)} absolute"
    assert tolerance.relative is not None
    return f"{tolerance.relative * 100:g}% relative ({_points(absolute)} of {baseline * 100:.2f}%)"


def _pool_for(
    target: float,
    baseline: float,
    discordance: float,
    evaluation: AccuracyEvaluation,
    screen_examples: int = 0,
) -> int | None:
    """The smallest pool whose last look's half-width is at most ``target`` (None: none).

    The half-width falls as the pool grows, in each of two stretches: up to
    ``first_examples`` (one look, z 1.96), and above it (several looks; the last look's z
    falls slowly as the looks spread): each is searched by doubling, then bisection.
    """
    if target <= 0:
        return None

    def fits(n: int) -> bool:
        _, z = last_z(n, evaluation, screen_examples)
        return paired_half_width(n, baseline_accuracy=baseline, discordance=discordance, z=z) <= (
            target
        )

    first = evaluation.first_examples
    if evaluation.looks == 1 or fits(first):
        low, high = 0, 1  # one look for any pool, or the first stretch reaches the target
    else:
        low, high = first, first + 1
    while not fits(high):
        if high > _POOL_LIMIT:
            return None
        low, high = high, 2 * high
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if fits(mid) else (mid, high)
    return high
