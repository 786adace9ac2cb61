"""The gate's accuracy check: the candidate against the reference on the same examples.

Both sides' per-example outcomes (right or wrong on each held-out example, in the split's
order, in the task's evaluation batches: :func:`compresslab.bench.scored`) are compared with
:func:`compresslab.records.accuracy_vs_baseline` (Newcombe's paired interval, at the level
``1 - check.alpha``), and the paired difference is decided against ``check.max_accuracy_drop``:

- ``below`` (the interval's upper end below ``-max_accuracy_drop``): fails the gate (exit 1);
- ``within`` (its lower end at or above it): passes;
- ``undecided``: inconclusive, like an energy interval that straddles its limit
  (``check.on_inconclusive`` decides), with how many examples would decide it.

The reference's outcomes are the baseline file's (``compresslab baseline`` stores them, format
3), else the reference model's evaluated now (``--reference``, ``--reference-rev``, and the
program of a baseline written before outcomes were stored). Stored outcomes that cannot be
paired with the candidate's (other examples, another evaluation batch: the task's options or
data changed since the baseline) are bad input, with how to make the baseline again, never a
silent unpaired comparison. Labelled fallbacks: a reference known by its accuracy and example
count only is compared unpaired (:func:`compresslab.records.accuracy_vs_baseline_unpaired`); by
its accuracy only (a format-1 baseline), as point figures. A metric other than accuracy
(``macro_f1``) is compared as point figures too: right/wrong outcomes decide an accuracy
tolerance only.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

from compresslab.records import (
    AccuracyVsBaseline,
    Outcomes,
    accuracy_vs_baseline,
    accuracy_vs_baseline_unpaired,
)

#: How a check decided: on the same examples, on two independent accuracies, or on two figures.
PAIRED, UNPAIRED, POINT = "newcombe-paired", "wilson-unpaired", "point"


@dataclass(frozen=True)
class Scored:
    """One side's accuracy as the gate knows it.

    Attributes:
        accuracy: the recipe's metric on the held-out split.
        outcomes: right or wrong per example (None: not known, e.g. an older baseline).
        examples: the examples the accuracy was measured on (None: not known).
        source: where the figures come from, in words (``outcomes stored in the baseline``).
    """

    accuracy: float
    outcomes: Outcomes | None = None
    examples: int | None = None
    source: str = ""

    @property
    def n(self) -> int | None:
        """The examples: the outcomes' count, else ``examples``."""
        return self.outcomes.n if self.outcomes is not None else self.examples


@dataclass
class AccuracyCheck:
    """The accuracy check's result, with the paired figures it was decided on.

    Attributes:
        reference: the reference's metric (None: unknown).
        candidate: the candidate's metric.
        passed: False only when the check fails the gate (``below``, or a point drop beyond
            the tolerance); an ``undecided`` check passes and is :attr:`inconclusive`.
        sentence: what the check found, in one sentence.
        method: ``newcombe-paired``, ``wilson-unpaired`` or ``point``.
        paired: whether both sides were compared on the same examples.
        decision: ``within``, ``below`` or ``undecided`` (None for a point comparison).
        delta: candidate minus reference (a fraction: -0.015 is 1.5 points worse).
        low: the interval's lower end (None for a point comparison).
        high: its upper end.
        level: the interval's level (``1 - check.alpha``).
        examples: the examples compared (the candidate's when unpaired).
        tolerance: ``check.max_accuracy_drop`` (None: accuracy is reported, not gated).
        examples_to_decide: the examples in all that would decide an ``undecided``
            difference at the same rates (None: decided, or none would).
        better: examples only the candidate gets right (paired).
        worse: examples only the reference gets right (paired).
        reference_source: where the reference's figures come from.
    """

    reference: float | None
    candidate: float
    passed: bool
    sentence: str
    method: str = POINT
    paired: bool = False
    decision: str | None = None
    delta: float | None = None
    low: float | None = None
    high: float | None = None
    level: float = 0.95
    examples: int | None = None
    tolerance: float | None = None
    examples_to_decide: int | None = None
    better: int = 0
    worse: int = 0
    reference_source: str = ""

    @property
    def gated(self) -> bool:
        """Whether the check can fail the gate (``check.max_accuracy_drop`` is set)."""
        return self.tolerance is not None

    @property
    def inconclusive(self) -> bool:
        """A gated difference the examples do not decide (``check.on_inconclusive`` decides)."""
        return self.gated and self.decision == "undecided"

    def row(self) -> str:
        """The check's row in the verdict's markdown table."""
        ref = f"{self.reference:.4f}" if self.reference is not None else "-"
        label = {PAIRED: "paired", UNPAIRED: "unpaired", POINT: "point"}[self.method]
        if self.examples:
            label += f", {self.examples} examples"
        if self.low is None or self.high is None or self.delta is None:
            found = "" if self.delta is None else f"{_points(self.delta)} points; "
        else:
            found = (
                f"{_points(self.delta)} points ({self.level:.0%}: {_points(self.low)} to "
                f"{_points(self.high)}); "
            )
        allowed = (
            f"allowed drop {_pts(self.tolerance)}" if self.tolerance is not None else "not gated"
        )
        result = self.decision or ("pass" if self.passed else "regression")
        return f"| accuracy ({label}) | {ref} | {self.candidate:.4f} | {found}{allowed}: {result} |"


def _points(fraction: float) -> str:
    return f"{fraction * 100:+.2f}"


def pairing_problem(candidate: Outcomes, reference: Outcomes) -> str | None:
    """Why two sides' outcomes cannot be paired (None: they can)."""

    def described(o: Outcomes) -> str:
        return f"{o.n} examples in batches of {o.batch_size}" + (
            f", examples {o.examples_id}" if o.examples_id else ""
        )

    if (candidate.kind, candidate.n, candidate.batch_size, candidate.examples_id) == (
        reference.kind,
        reference.n,
        reference.batch_size,
        reference.examples_id,
    ):
        return None
    return (
        f"the reference's per-example outcomes ({described(reference)}) cannot be paired with "
        f"the candidate's ({described(candidate)}): they were computed on other examples or "
        "in other evaluation batches"
    )


def accuracy_check(
    reference: Scored | None,
    candidate: Scored,
    *,
    metric: str,
    max_drop: float | None,
    alpha: float = 0.05,
) -> AccuracyCheck | None:
    """The accuracy check of ``candidate`` against ``reference`` (None: the reference is unknown).

    Paired when both sides have pairable outcomes and the metric is accuracy; else unpaired
    when the reference's example count is known; else point figures. With ``max_drop`` unset,
    the figures are reported and never fail the gate (decided against a zero tolerance).

    Raises:
        ValueError: both sides have outcomes that cannot be paired (:func:`pairing_problem`);
            the gate checks this first and says how to fix it.
    """
    if reference is None:
        return None
    z = NormalDist().inv_cdf(1 - alpha / 2)
    tolerance = max_drop if max_drop is not None else 0.0
    if metric != "accuracy":
        why = _NOT_ACCURACY.format(metric=metric)
        return _point(reference, candidate, metric=metric, max_drop=max_drop, why=why)
    if reference.outcomes is not None and candidate.outcomes is not None:
        if problem := pairing_problem(candidate.outcomes, reference.outcomes):
            if max_drop is not None:
                raise ValueError(problem)
            return _point(reference, candidate, metric=metric, max_drop=None, why=problem)
        found = accuracy_vs_baseline(
            candidate.outcomes, reference.outcomes, tolerance=tolerance, metric=metric, z=z
        )
    elif reference.examples is not None and candidate.n:
        found = accuracy_vs_baseline_unpaired(
            candidate_accuracy=candidate.accuracy,
            candidate_n=candidate.n,
            baseline_accuracy=reference.accuracy,
            baseline_n=reference.examples,
            tolerance=tolerance,
            metric=metric,
            z=z,
        )
    else:
        return _point(reference, candidate, metric=metric, max_drop=max_drop, why=_NO_COUNT)
    return _decided(found, reference, candidate, gated=max_drop is not None, level=1 - alpha)


_NOT_ACCURACY = (
    "a point comparison: per-example right/wrong outcomes decide an accuracy tolerance, "
    "not a {metric} one"
)
_NO_COUNT = (
    "a point comparison: the baseline holds neither per-example outcomes nor its number of "
    "examples, as it was made before they were stored; recreate it with `compresslab baseline "
    "RECIPE --out FILE --force` to decide on the same examples"
)


def _pts(tolerance: float) -> str:
    points = tolerance * 100
    return f"{points:g} point{'' if points == 1 else 's'}"


def _how(found: AccuracyVsBaseline, reference: Scored, candidate: Scored, level: float) -> str:
    """The figures, the examples and the interval of a decided comparison, in words."""
    figures = f"{reference.accuracy:.4f} -> {candidate.accuracy:.4f}"
    interval = f"{level:.0%} interval {_points(found.low)} to {_points(found.high)}"
    if found.paired:
        source = f" (reference: {reference.source})" if reference.source else ""
        return (
            f"{figures} on the same {found.examples} examples{source}, paired difference "
            f"{_points(found.delta)} points, {interval} (Newcombe; {found.discordant_b} "
            f"examples only the candidate gets right, {found.discordant_c} only the reference)"
        )
    return (
        f"{figures}, unpaired ({reference.source or 'the reference'} holds no per-example "
        f"outcomes, only its accuracy on {reference.examples} examples: recreate the baseline "
        "with `compresslab baseline RECIPE --out FILE --force` to compare on the same "
        f"examples), difference {_points(found.delta)} points, {interval} (Newcombe's hybrid "
        "score interval for independent proportions)"
    )


def _decided(
    found: AccuracyVsBaseline, reference: Scored, candidate: Scored, *, gated: bool, level: float
) -> AccuracyCheck:
    metric, how, tol = found.metric, _how(found, reference, candidate, level), found.tolerance
    if not gated:
        sentence = f"{metric} {how}; not gated: check.max_accuracy_drop is null"
    elif found.decision == "below":
        sentence = (
            f"{metric} fell by more than the allowed {_pts(tol)}: {how}: the whole interval "
            f"is below -{_pts(tol)}"
        )
    elif found.decision == "within":
        sentence = (
            f"{metric} within the allowed drop of {_pts(tol)}: {how}: the interval's lower "
            f"end is at or above -{_pts(tol)}"
        )
    else:
        more = (
            f"about {found.examples_to_decide} examples in all would decide it at the same "
            "rates (grow the task's evaluation split)"
            if found.examples_to_decide
            else "no number of examples would decide it at the same rates"
        )
        sentence = (
            f"{metric} undecided against the allowed drop of {_pts(tol)}: {how}: the interval "
            f"straddles -{_pts(tol)}; {more}"
        )
    return AccuracyCheck(
        reference=reference.accuracy,
        candidate=candidate.accuracy,
        passed=not (gated and found.decision == "below"),
        sentence=sentence,
        method=found.method,
        paired=found.paired,
        decision=found.decision if gated else None,
        delta=found.delta,
        low=found.low,
        high=found.high,
        level=level,
        examples=found.examples,
        tolerance=found.tolerance if gated else None,
        examples_to_decide=found.examples_to_decide if gated else None,
        better=found.discordant_b,
        worse=found.discordant_c,
        reference_source=reference.source,
    )


def _point(
    reference: Scored, candidate: Scored, *, metric: str, max_drop: float | None, why: str
) -> AccuracyCheck:
    """Today's comparison of two figures, labelled (``why``: the reason it is not paired)."""
    drop = reference.accuracy - candidate.accuracy
    figures = f"{metric} {reference.accuracy:.4f} -> {candidate.accuracy:.4f}"
    failed = max_drop is not None and drop > max_drop
    if failed:
        assert max_drop is not None
        sentence = (
            f"{metric} fell {drop * 100:.2f} points ({figures}), more than the allowed "
            f"{max_drop * 100:g} ({why})"
        )
    else:
        allowed = (
            f"allowed drop {max_drop * 100:g} points"
            if max_drop is not None
            else "not gated: check.max_accuracy_drop is null"
        )
        sentence = f"{figures} ({allowed}; {why})"
    return AccuracyCheck(
        reference=reference.accuracy,
        candidate=candidate.accuracy,
        passed=not failed,
        sentence=sentence,
        delta=-drop,
        examples=candidate.n,
        tolerance=max_drop,
        reference_source=reference.source,
    )
