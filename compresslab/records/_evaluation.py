"""What evaluating one variant produced: the :class:`Evaluation` record and its parts.

The bench (:meth:`compresslab.bench.VariantBench.evaluate`) returns an :class:`Evaluation`;
the search stores it with its trial (:mod:`compresslab.study.attrs`, the only code that knows
the stored keys) and every reader (report, command line, notebook API, ``compare``, history,
the gate) reads the same record back. To add a figure: a field here, its computation in the
bench; the store follows the field (it is serialized from the annotations).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from compresslab.records._accuracy import AccuracyVsBaseline, Outcomes, PerplexityVsBaseline
from compresslab.records._energy import EnergyResult


@dataclass(frozen=True)
class PairedRatio:
    """A variant's energy per inference relative to the baseline's, measured paired (ABBA).

    ``ratio`` is variant / baseline; ``[ci95_low, ci95_high]`` the interval a user sees (the
    pairs' own, widened by the machine's repeatability of ratios between spans where known);
    ``ci95_low_pairs``/``ci95_high_pairs`` the pairs' alone, with the term's size
    (``ratio_repeatability_rel``, a 95% half-width of the log ratio) and where it came from.
    """

    ratio: float
    ci95_low: float
    ci95_high: float
    pairs: int = 0
    order: str = "ABBA"
    ci_target_met: bool = True
    ci95_low_pairs: float | None = None
    ci95_high_pairs: float | None = None
    ratio_repeatability_rel: float | None = None
    ratio_repeatability_source: str | None = None

    @classmethod
    def itself(cls) -> PairedRatio:
        """The baseline against itself: exactly 1."""
        return cls(ratio=1.0, ci95_low=1.0, ci95_high=1.0, pairs=0, order="the baseline itself")

    @property
    def halfwidth(self) -> float:
        """Half the interval's width (in units of the ratio)."""
        return (self.ci95_high - self.ci95_low) / 2


@dataclass(frozen=True)
class OpCounts:
    """What one inference (one example) does, counted by :func:`compresslab.modeled.ops.count_ops`.

    ``macs`` by operation class (``fp32_linear``, ``int8_linear`` ...); bytes per example.
    ``batch_size`` is the batch the counts were taken on (0: not recorded).
    """

    macs: dict[str, float] = field(default_factory=dict)
    weight_bytes: float = 0.0
    activation_bytes_per_example: float = 0.0
    input_bytes_per_example: float = 0.0
    batch_size: int = 0


@dataclass(frozen=True)
class Profile:
    """The variant's size: parameters, MACs per inference, bytes on disk and in memory."""

    n_params: int | None = None
    macs_per_inference: float | None = None
    size_bytes: int | None = None
    memory_bytes: int | None = None
    sparsity: float | None = None


@dataclass(frozen=True)
class Quality:
    """What a task measures besides its metric (a language model's perplexity); empty else.

    ``perplexity_ratio`` is the variant's perplexity over the baseline's on the same tokens
    (paired), with its 95% interval.
    """

    perplexity: float | None = None
    perplexity_ci95: tuple[float, float] | None = None
    perplexity_ratio: float | None = None
    perplexity_ratio_ci95: tuple[float, float] | None = None
    baseline_perplexity: float | None = None
    perplexity_tokens: int | None = None
    perplexity_texts: int | None = None

    @property
    def empty(self) -> bool:
        """True when the task measured nothing besides its metric."""
        return self.perplexity is None

    @classmethod
    def of(cls, values: Mapping[str, object]) -> Quality:
        """The quality a task reported (:meth:`compresslab.tasks.Task.quality`)."""
        from compresslab.records._codec import from_json

        return from_json(cls, dict(values))


@dataclass(frozen=True)
class Answer:
    """A sample output of a generative variant: a fixed prompt and its greedy answer."""

    prompt: str
    answer: str


@dataclass(frozen=True)
class PartTime:
    """Wall and process CPU seconds spent in one part of an evaluation, and its peak memory."""

    wall_s: float = 0.0
    cpu_s: float = 0.0
    #: The largest resident memory seen at the part's laps, in GB.
    rss_gb: float = 0.0


@dataclass(frozen=True)
class Evaluation:
    """Everything evaluating one variant produced, as the bench returns it.

    Attributes:
        metric: the recipe's metric on the whole evaluation split (accuracy: a fraction).
        metric_ci95: its 95% interval (accuracy: Wilson's, unpaired).
        energy: the variant's energy per inference (its side of the pairs, or the baseline's
            own measurement for the baseline).
        vs_baseline: the paired ratio to the baseline (exactly 1 for the baseline itself;
            None in studies written before variants were measured paired).
        reference_energy: the baseline's side of the pairs (None for the baseline itself).
        modeled_j_per_inference: the modeled tier's joules per inference (counted operations
            times uncalibrated per-operation energies).
        profile: parameters, MACs, bytes, sparsity.
        op_counts: the operations counted on one forward pass, per example.
        notes: what the build said about the variant (layers a quantizer kept in float ...).
        quality: perplexity and its ratio to the baseline's (generative tasks).
        answers: sample answers (generative tasks).
        phases: phases of the workload measured on their own (a generation: ``prefill``).
        parts: wall and CPU seconds per part of the evaluation (build, finetune, evaluate,
            measure).
        metric_examples: how many evaluation examples the metric was computed on (0: not
            recorded, a study written before it was).
        outcomes: what the model did on each evaluation example (right or wrong), so that
            any comparison with another model evaluated on the same examples can be paired
            (None: not recorded, a study written before they were). A variant compared in
            looks holds the examples it was compared on: a prefix of the pool.
        accuracy_vs_baseline: the metric against the baseline's on the same examples,
            decided against the tolerance at the look that stopped (the search's comparison;
            None where the bench compared nothing: the baseline, ``measure``).
        text_outcomes: a language model's negative log-likelihood of each perplexity text
            (``nll`` outcomes; None for other tasks).
        perplexity_vs_baseline: the perplexity over the baseline's on the same texts, decided
            against ``search.tolerance.perplexity`` (None without one).
    """

    metric: float
    metric_ci95: tuple[float, float]
    energy: EnergyResult
    vs_baseline: PairedRatio | None
    reference_energy: EnergyResult | None = None
    modeled_j_per_inference: float = math.nan
    profile: Profile = field(default_factory=Profile)
    op_counts: OpCounts = field(default_factory=OpCounts)
    notes: tuple[str, ...] = ()
    quality: Quality = field(default_factory=Quality)
    answers: tuple[Answer, ...] = ()
    phases: dict[str, EnergyResult] = field(default_factory=dict)
    parts: dict[str, PartTime] = field(default_factory=dict)
    metric_examples: int = 0
    outcomes: Outcomes | None = None
    accuracy_vs_baseline: AccuracyVsBaseline | None = None
    text_outcomes: Outcomes | None = None
    perplexity_vs_baseline: PerplexityVsBaseline | None = None

    @property
    def energy_j_per_inference(self) -> float:
        """The variant's own measured joules per inference."""
        return self.energy.energy_j_per_inference
