"""A search's trials as plain records, the frontier, and what a report needs.

No Optuna here: :mod:`compresslab.study` turns a study into these records (through
:mod:`compresslab.study.attrs`), and the report layer only reads them, so reports can be
rebuilt from any storage.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from compresslab import units
from compresslab.records._accuracy import AccuracyVsBaseline
from compresslab.records._energy import EnergyResult
from compresslab.records._evaluation import (
    Answer,
    Evaluation,
    PairedRatio,
    PartTime,
    Profile,
    Quality,
)


@dataclass(frozen=True)
class Screening:
    """A variant not measured for energy: clearly outside the tolerance on what was seen.

    ``accuracy`` is what screening saw (None when the perplexity ruled the variant out).
    """

    reason: str
    accuracy: float | None = None


@dataclass(frozen=True)
class CalibrationUsed:
    """The calibration a prediction came from: its size, held-out quality and machine."""

    n: int = 0
    loo_spearman: float | None = None
    loo_median_error_rel: float | None = None
    fitted_at: float | None = None
    machine_id: str | None = None


@dataclass(frozen=True)
class Prediction:
    """A variant not measured: a calibrated prediction said, with its error, it is dominated."""

    reason: str
    accuracy: float | None = None
    j_per_inference: float | None = None
    ratio: float | None = None
    error_rel: float | None = None
    optimistic_j_per_inference: float | None = None
    dominated_by: int | None = None
    dominating_accuracy: float | None = None
    dominating_j_per_inference: float | None = None
    calibration: CalibrationUsed = field(default_factory=CalibrationUsed)
    provenance: str = "modeled"


@dataclass(frozen=True)
class Confirmation:
    """A claim measured again after the search, paired with the baseline, in rounds.

    ``ratio`` is the geometric mean of all pairs; ``[ci95_low, ci95_high]`` the wider of the
    rounds' and the pairs' Student t intervals (``interval_from`` says which);
    ``search_ratio`` the search-time figure it confirms. The ``round_*`` fields, ``tier`` and
    ``machine_id`` are what the rounds teach the machine's repeatability of ratios.
    ``accuracy`` is the claim's accuracy against the baseline's on the task's untouched
    confirmation split (paired, one look); ``accuracy_note`` says why there is none.
    """

    ratio: float
    ci95_low: float
    ci95_high: float
    pairs: int = 0
    rounds: int = 0
    round_ratios: tuple[float, ...] = ()
    interval_from: str = "pairs"
    order: str = "ABBA, in rounds spread in time"
    search_ratio: float | None = None
    candidate_j_per_inference: float | None = None
    reference_j_per_inference: float | None = None
    contended: bool = False
    at: float | None = None
    spread_s: float | None = None
    round_log_ratios: tuple[float, ...] = ()
    round_within_var: tuple[float, ...] = ()
    tier: str | None = None
    machine_id: str | None = None
    accuracy: AccuracyVsBaseline | None = None
    accuracy_note: str = ""


@dataclass(frozen=True, kw_only=True)
class TrialRecord:
    """One variant of a search: what was built, how accurate it is, what it costs.

    ``evaluation`` is what the bench produced (None unless the trial completed: failed,
    screened, predicted and skipped trials have none); the figures below read through it.
    Failed trials have ``error`` set (the exception's type and message).
    """

    number: int
    state: str
    variant: str
    is_baseline: bool
    params: dict[str, Any] = field(default_factory=dict)
    evaluation: Evaluation | None = None
    feasible: bool | None = None
    error: str | None = None
    screening: Screening | None = None
    predicted: Prediction | None = None
    duration_s: float | None = None
    reused_from: int | None = None
    host: str | None = None
    #: A re-measurement after the search, paired with the baseline with more pairs.
    confirmed: Confirmation | None = None
    #: The baseline trial's own measured joules per inference: the scale of paired figures.
    baseline_j: float | None = None
    #: Relative 95% half-width of one absolute measurement's spread between measurements,
    #: from the baseline measured again beside every variant of the study (None: unknown).
    repeatability_rel: float | None = None
    #: Wall and CPU seconds per part, also for a trial that stopped before measuring.
    parts: dict[str, PartTime] = field(default_factory=dict)
    #: The metric's difference to the baseline's, paired on the same examples where both
    #: kept their per-example outcomes (else the labelled unpaired fallback), with the
    #: decision against the tolerance (None: not evaluated, or nothing to compare with).
    accuracy_vs_baseline: AccuracyVsBaseline | None = None

    # --- the evaluation's figures -----------------------------------------------------------

    @property
    def accuracy(self) -> float | None:
        """The metric on the evaluation split (None: not evaluated to the end)."""
        return self.evaluation.metric if self.evaluation is not None else None

    @property
    def accuracy_ci95(self) -> tuple[float, float] | None:
        """The metric's 95% interval (None: not evaluated)."""
        return self.evaluation.metric_ci95 if self.evaluation is not None else None

    @property
    def energy(self) -> EnergyResult | None:
        """The variant's measurement (None: not measured)."""
        return self.evaluation.energy if self.evaluation is not None else None

    @property
    def vs_baseline(self) -> PairedRatio | None:
        """The ratio to the baseline measured paired in this trial (None: not measured)."""
        return self.evaluation.vs_baseline if self.evaluation is not None else None

    @property
    def reference_energy(self) -> EnergyResult | None:
        """The baseline's side of this trial's pairs (None: the baseline, or not measured)."""
        return self.evaluation.reference_energy if self.evaluation is not None else None

    @property
    def profile(self) -> Profile:
        """Parameters, MACs, bytes and sparsity (all None: not evaluated)."""
        return self.evaluation.profile if self.evaluation is not None else Profile()

    @property
    def quality(self) -> Quality:
        """Perplexity and its ratio (generative tasks; empty otherwise)."""
        return self.evaluation.quality if self.evaluation is not None else Quality()

    @property
    def answers(self) -> tuple[Answer, ...]:
        """Sample answers (generative tasks)."""
        return self.evaluation.answers if self.evaluation is not None else ()

    @property
    def phases(self) -> dict[str, EnergyResult]:
        """Phases measured on their own (a generation's prefill)."""
        return self.evaluation.phases if self.evaluation is not None else {}

    @property
    def notes(self) -> tuple[str, ...]:
        """What the build said about the variant."""
        return self.evaluation.notes if self.evaluation is not None else ()

    @property
    def modeled_j_per_inference(self) -> float | None:
        """The modeled tier's joules per inference (None: not evaluated)."""
        return self.evaluation.modeled_j_per_inference if self.evaluation is not None else None

    @property
    def screened(self) -> str | None:
        """Why the variant was screened out (None: it was not)."""
        return self.screening.reason if self.screening is not None else None

    @property
    def screen_accuracy(self) -> float | None:
        """The accuracy screening saw (None: not screened, or ruled out by perplexity)."""
        return self.screening.accuracy if self.screening is not None else None

    # --- derived ----------------------------------------------------------------------------

    @property
    def evaluated(self) -> bool:
        """A distinct variant evaluated: measured, screened out or predicted dominated."""
        done = self.complete or self.screening is not None or self.predicted is not None
        return self.reused_from is None and done

    @property
    def complete(self) -> bool:
        """True when the variant was built, evaluated and measured."""
        return self.state == "COMPLETE" and self.evaluation is not None

    @property
    def measured_j_per_inference(self) -> float:
        """Joules per inference as measured in this trial's own windows (``nan``: none)."""
        energy = self.energy
        return energy.energy_j_per_inference if energy is not None else math.nan

    @property
    def ratio_vs_baseline(self) -> float | None:
        """Energy relative to the baseline, from paired windows (None: not paired)."""
        vs = self.vs_baseline
        return vs.ratio if vs is not None and self.complete else None

    @property
    def energy_j_per_inference(self) -> float:
        """Joules per inference on the study's common scale (``nan`` when not measured).

        For a paired trial: its ratio to the baseline (windows interleaved in one span of
        time) times the baseline trial's own figure, so every variant of a study is compared
        with the same baseline measurement. Unpaired trials (older studies): as measured.
        """
        ratio = self.ratio_vs_baseline
        if ratio is not None and self.baseline_j is not None:
            return ratio * self.baseline_j
        return self.measured_j_per_inference

    @property
    def ci95_j_per_inference(self) -> float:
        """Half-width of the 95% interval of :attr:`energy_j_per_inference` (``nan``: none).

        A paired variant's interval is its ratio's, on the baseline's scale; the baseline's
        own interval is its measured one (a common scale factor for every variant).
        """
        base_j = self.baseline_j
        vs = self.vs_baseline
        if self.ratio_vs_baseline is not None and base_j is not None and not self.is_baseline:
            assert vs is not None
            return vs.halfwidth * base_j
        within = self.energy.ci95_j_per_inference if self.energy is not None else math.nan
        if self.repeatability_rel is None:
            return within
        # An absolute figure also moves between measurements (the machine's load changes).
        return math.hypot(within, self.repeatability_rel * self.measured_j_per_inference)

    @property
    def kwh_per_1k(self) -> float:
        """Kilowatt-hours per 1000 inferences (``nan`` when not measured)."""
        return units.kwh_per_1k(self.energy_j_per_inference)

    @property
    def provenance(self) -> str:
        """How the energy figure was obtained (``-`` when not measured)."""
        return str(self.energy.provenance) if self.energy is not None else "-"


def dominates(a: TrialRecord, b: TrialRecord) -> bool:
    """True when ``a`` is at least as accurate and as frugal as ``b``, and better in one."""
    assert a.accuracy is not None and b.accuracy is not None
    ea, eb = a.energy_j_per_inference, b.energy_j_per_inference
    return a.accuracy >= b.accuracy and ea <= eb and (a.accuracy > b.accuracy or ea < eb)


def pareto_front(
    records: Sequence[TrialRecord], *, feasible_only: bool = True
) -> list[TrialRecord]:
    """Non-dominated complete trials (feasible ones only by default), sorted by energy.

    Trials that measured the same variant again (``reused_from``) are left out, so each variant
    appears once.
    """
    pool = [
        r
        for r in records
        if r.complete and r.reused_from is None and (r.feasible or not feasible_only)
    ]
    front = [r for r in pool if not any(dominates(o, r) for o in pool if o is not r)]
    return sorted(front, key=lambda r: (r.energy_j_per_inference, -(r.accuracy or 0.0)))
