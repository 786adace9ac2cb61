"""Per-example outcomes of an evaluated model, and its accuracy against the baseline's.

:class:`Outcomes` keeps what a model did on each evaluation example, compactly, so that any
comparison can be paired later (the same examples, in the same order, in the same batches).
:func:`accuracy_vs_baseline` compares two of them and returns an :class:`AccuracyVsBaseline`:
the difference, its interval, and the decision against a tolerance (``within``, ``below`` or
``undecided``, see :func:`compresslab.paired.decide`). :func:`accuracy_vs_baseline_unpaired`
is the labelled fallback when only two accuracies are known; :func:`perplexity_vs_baseline`
compares per-text log-likelihoods. The statistics are in :mod:`compresslab.paired`.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from compresslab import paired
from compresslab.paired import Z95, Decision

OutcomeKind = Literal["correct", "score", "nll"]
AccuracyMethod = Literal["newcombe-paired", "paired-bootstrap", "wilson-unpaired"]


@dataclass(frozen=True)
class Outcomes:
    """What one evaluated model did on each evaluation example, in the examples' order.

    One of three kinds: ``correct`` (right or wrong, for accuracy: ``bits`` holds them packed,
    eight to a byte, the first example in the lowest bit, base64-encoded: 10,000 examples take
    about 1.7 kB), ``score`` (a per-example score: ``scores``), ``nll`` (a language model's
    summed negative log-likelihood of each text, in nats: ``nll``, with the text's ``tokens``).

    Attributes:
        kind: ``correct``, ``score`` or ``nll``.
        n: the number of examples (texts for ``nll``).
        batch_size: the evaluation batch the outcomes were computed in (a dynamically
            quantized model's answers can change with the other inputs of its batch: paired
            outcomes must come from the same batches).
        bits: the packed right/wrong of each example (``correct``).
        scores: each example's score (``score``).
        nll: each text's negative log-likelihood (``nll``).
        tokens: each text's token count (``nll``).
        examples_id: what identifies the examples (a hash of their indices or content; empty
            if unknown): outcomes with different identities are never paired.
    """

    kind: OutcomeKind
    n: int
    batch_size: int
    bits: str = ""
    scores: tuple[float, ...] = ()
    nll: tuple[float, ...] = ()
    tokens: tuple[int, ...] = ()
    examples_id: str = ""

    def __post_init__(self) -> None:
        sizes = {
            "correct": len(base64.b64decode(self.bits)) if self.kind == "correct" else 0,
            "score": len(self.scores),
            "nll": len(self.nll),
        }
        if self.kind not in sizes:
            raise ValueError(f"unknown outcome kind {self.kind!r}: correct, score or nll")
        expected = (self.n + 7) // 8 if self.kind == "correct" else self.n
        if sizes[self.kind] != expected or (self.kind == "nll" and len(self.tokens) != self.n):
            raise ValueError(f"{self.kind} outcomes of {self.n} examples hold a different count")

    @classmethod
    def from_correct(
        cls, correct: Iterable[bool], *, batch_size: int, examples_id: str = ""
    ) -> Outcomes:
        """Right or wrong per example (a list of bools or a numpy bool array)."""
        flags = [bool(v) for v in correct]
        packed = bytearray((len(flags) + 7) // 8)
        for i, flag in enumerate(flags):
            if flag:
                packed[i >> 3] |= 1 << (i & 7)
        bits = base64.b64encode(bytes(packed)).decode("ascii")
        return cls("correct", len(flags), batch_size, bits=bits, examples_id=examples_id)

    @classmethod
    def from_scores(
        cls, scores: Iterable[float], *, batch_size: int, examples_id: str = ""
    ) -> Outcomes:
        """A score per example (higher is better)."""
        values = tuple(float(v) for v in scores)
        return cls("score", len(values), batch_size, scores=values, examples_id=examples_id)

    @classmethod
    def from_nll(
        cls,
        nll: Iterable[float],
        tokens: Iterable[int],
        *,
        batch_size: int,
        examples_id: str = "",
    ) -> Outcomes:
        """Each text's summed negative log-likelihood (nats) and its number of tokens."""
        sums, counts = tuple(float(v) for v in nll), tuple(int(t) for t in tokens)
        return cls("nll", len(sums), batch_size, nll=sums, tokens=counts, examples_id=examples_id)

    def head(self, n: int) -> Outcomes:
        """The outcomes of the first ``n`` examples (all of them when there are fewer).

        A staged comparison sees a prefix of the pool: the pool is scored in the same chunks
        for every model, so a prefix of the baseline's outcomes pairs with a variant's.
        """
        if n >= self.n:
            return self
        if self.kind == "correct":
            return Outcomes.from_correct(
                self.correct()[:n], batch_size=self.batch_size, examples_id=self.examples_id
            )
        return Outcomes(
            self.kind, n, self.batch_size, scores=self.scores[:n], nll=self.nll[:n],
            tokens=self.tokens[:n], examples_id=self.examples_id,
        )  # fmt: skip

    def correct(self) -> list[bool]:
        """Right or wrong per example.

        Raises:
            ValueError: the outcomes are not ``correct`` ones.
        """
        if self.kind != "correct":
            raise ValueError(f"{self.kind} outcomes hold no right/wrong per example")
        packed = base64.b64decode(self.bits)
        return [bool(packed[i >> 3] >> (i & 7) & 1) for i in range(self.n)]

    @property
    def successes(self) -> int:
        """How many examples are right (``correct`` outcomes)."""
        return sum(self.correct())

    def values(self) -> list[float]:
        """A number per example: 1.0/0.0 for ``correct``, the score, or the text's NLL."""
        if self.kind == "correct":
            return [1.0 if v else 0.0 for v in self.correct()]
        return list(self.scores if self.kind == "score" else self.nll)


@dataclass(frozen=True)
class AccuracyVsBaseline:
    """A variant's metric minus its baseline's, with its interval and the decision.

    Attributes:
        delta: candidate minus baseline (a fraction: -0.01 is one point worse).
        low: the interval's lower end.
        high: its upper end.
        method: ``newcombe-paired`` (right/wrong per example, :func:`paired.newcombe_paired`),
            ``paired-bootstrap`` (per-example scores, :func:`paired.paired_bootstrap`) or
            ``wilson-unpaired`` (two accuracies only, :func:`paired.newcombe_unpaired`).
        decision: ``within`` (``low >= -tolerance``), ``below`` (``high < -tolerance``) or
            ``undecided``. Only ``within`` may be called within tolerance.
        examples: the examples each model was evaluated on (the candidate's when unpaired).
        tolerance: the tolerance decided against (a fraction).
        paired: whether the models were compared on the same examples.
        discordant_b: examples the candidate does better on (right where the baseline is
            wrong); 0 when unpaired.
        discordant_c: examples the baseline does better on; 0 when unpaired.
        examples_to_decide: the examples in all that would decide an ``undecided`` difference
            at the same rates (None: none would, or it is decided).
        metric: the metric compared.
        z: the normal quantile of the interval (1.96 for 95%; larger at a sequential look).
        look: the look that decided (1-based; 1 for a comparison in one look).
        looks: the looks planned (1 for a comparison in one look).
        pool: the examples the comparison could have used at most (0: unknown).
        spending: the alpha-spending rule of the looks (empty for a single look).
        futile: the looks stopped early, undecided, because even the whole pool would not
            show the difference within the tolerance at the rates seen
            (:func:`compresslab.looks.futile`).
    """

    delta: float
    low: float
    high: float
    method: AccuracyMethod
    decision: Decision
    examples: int
    tolerance: float
    paired: bool
    discordant_b: int = 0
    discordant_c: int = 0
    examples_to_decide: int | None = None
    metric: str = "accuracy"
    z: float = Z95
    look: int = 1
    looks: int = 1
    pool: int = 0
    spending: str = ""
    futile: bool = False

    @property
    def sequential(self) -> bool:
        """Whether the examples were added in looks (the interval is then a repeated one)."""
        return self.looks > 1


@dataclass(frozen=True)
class PerplexityVsBaseline:
    """A variant's perplexity over its baseline's on the same texts, and the decision.

    Attributes:
        ratio: candidate perplexity / baseline perplexity (above 1: worse).
        low: the interval's lower end.
        high: its upper end.
        decision: ``within`` (``high <= 1 + tolerance``), ``below`` (``low > 1 + tolerance``:
            worse than the tolerance allows) or ``undecided``.
        texts: the texts compared.
        tokens: their tokens in all.
        tolerance: the relative increase allowed (0.05: +5%).
        method: how the interval was computed (:func:`paired.perplexity_ratio`).
        z: the normal quantile of the interval.
    """

    ratio: float
    low: float
    high: float
    decision: Decision
    texts: int
    tokens: int
    tolerance: float
    method: str = "paired-delta-method"
    z: float = Z95


def _check_paired(candidate: Outcomes, baseline: Outcomes) -> None:
    def described(o: Outcomes) -> str:
        return f"{o.kind} outcomes of {o.n} examples in batches of {o.batch_size}" + (
            f" (examples {o.examples_id})" if o.examples_id else ""
        )

    same = (
        candidate.kind == baseline.kind
        and candidate.n == baseline.n
        and candidate.batch_size == baseline.batch_size
        and candidate.examples_id == baseline.examples_id
    )
    if not same:
        raise ValueError(
            f"cannot pair the candidate's {described(candidate)} with the baseline's "
            f"{described(baseline)}: evaluate both on the same examples with the same "
            f"evaluation batch, or compare their accuracies unpaired "
            f"(accuracy_vs_baseline_unpaired)"
        )


def accuracy_vs_baseline(
    candidate: Outcomes,
    baseline: Outcomes,
    *,
    tolerance: float,
    metric: str = "accuracy",
    z: float = Z95,
    resamples: int = 2000,
    seed: int = 0,
) -> AccuracyVsBaseline:
    """The candidate's metric minus the baseline's on the same examples, decided.

    ``correct`` outcomes: Newcombe's paired interval; ``score`` outcomes: the paired bootstrap
    of the mean difference (``resamples``, ``seed``). ``z``: 1.96 for one look, or a look's z
    from :func:`paired.alpha_spending` when examples are added in stages.

    Raises:
        ValueError: outcomes that cannot be paired (different kinds, lengths, evaluation
            batches or examples), or ``nll`` outcomes (see :func:`perplexity_vs_baseline`).
    """
    _check_paired(candidate, baseline)
    n = candidate.n
    if n == 0:
        raise ValueError("no examples to compare: evaluate both models on at least one")
    if candidate.kind == "nll":
        raise ValueError("nll outcomes compare by perplexity: use perplexity_vs_baseline")
    cand, base = candidate.values(), baseline.values()
    b = sum(x > y for x, y in zip(cand, base, strict=True))
    c = sum(x < y for x, y in zip(cand, base, strict=True))
    if candidate.kind == "correct":
        both = sum(x > 0 and y > 0 for x, y in zip(cand, base, strict=True))
        low, high = paired.newcombe_paired(b, c, n, both_correct=both, z=z)
        decision = paired.decide(low, high, tolerance)
        more = None
        if decision == "undecided":
            more = paired.examples_to_decide(b, c, n, tolerance, both_correct=both, z=z)
        return AccuracyVsBaseline(
            (b - c) / n, low, high, "newcombe-paired", decision, n, tolerance, True,
            b, c, more, metric, z,
        )  # fmt: skip
    delta = (sum(cand) - sum(base)) / n
    low, high = paired.paired_bootstrap(cand, base, resamples=resamples, seed=seed, z=z)
    decision = paired.decide(low, high, tolerance)
    more = _scaled_examples(delta, low, high, n, tolerance) if decision == "undecided" else None
    return AccuracyVsBaseline(
        delta, low, high, "paired-bootstrap", decision, n, tolerance, True, b, c, more, metric, z
    )


def _scaled_examples(delta: float, low: float, high: float, n: int, tolerance: float) -> int | None:
    """Examples that would decide, if the interval's half-width shrinks like ``1/sqrt(n)``."""
    gap = abs(delta + tolerance)
    if gap < 1e-12:
        return None
    half = (high - low) / 2
    return max(n, int(n * (half / gap) ** 2) + 1)


def accuracy_vs_baseline_unpaired(
    *,
    candidate_accuracy: float,
    candidate_n: int,
    baseline_accuracy: float,
    baseline_n: int,
    tolerance: float,
    metric: str = "accuracy",
    z: float = Z95,
) -> AccuracyVsBaseline:
    """The labelled fallback without per-example outcomes: two independent accuracies.

    Newcombe's hybrid score interval for independent proportions (method ``wilson-unpaired``,
    ``paired=False``); wider than the paired one, since it ignores that the models agree on
    most examples.
    """
    low, high = paired.newcombe_unpaired(
        candidate_accuracy * candidate_n, candidate_n, baseline_accuracy * baseline_n,
        baseline_n, z=z,
    )  # fmt: skip
    decision = paired.decide(low, high, tolerance)
    more = None
    if decision == "undecided":
        more = paired.examples_to_decide_unpaired(
            candidate_accuracy, baseline_accuracy, candidate_n, tolerance, z=z
        )
    return AccuracyVsBaseline(
        candidate_accuracy - baseline_accuracy, low, high, "wilson-unpaired", decision,
        candidate_n, tolerance, False, examples_to_decide=more, metric=metric, z=z,
    )  # fmt: skip


def perplexity_vs_baseline(
    candidate: Outcomes, baseline: Outcomes, *, tolerance: float, z: float = Z95
) -> PerplexityVsBaseline:
    """The candidate's perplexity over the baseline's on the same texts, decided.

    ``tolerance`` is the relative increase allowed (0.05 for +5%).

    Raises:
        ValueError: outcomes that are not ``nll`` ones or cannot be paired.
    """
    _check_paired(candidate, baseline)
    if candidate.kind != "nll":
        raise ValueError(f"a perplexity ratio needs nll outcomes, not {candidate.kind} ones")
    ratio, low, high = paired.perplexity_ratio(candidate.nll, baseline.nll, candidate.tokens, z=z)
    # A higher perplexity is worse: decide on 1 - ratio, whose interval is [1 - high, 1 - low].
    decision = paired.decide(1 - high, 1 - low, tolerance)
    return PerplexityVsBaseline(
        ratio, low, high, decision, candidate.n, sum(candidate.tokens), tolerance, z=z
    )
