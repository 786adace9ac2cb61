"""Search results as plain records: one :class:`TrialRecord` per variant, and the frontier.

No Optuna here: :mod:`compresslab.study` turns a study into these records, and the report
layer only reads them, so reports can be rebuilt from any storage.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from compresslab import units


@dataclass(frozen=True, kw_only=True)
class TrialRecord:
    """One variant of a search: what was built, how accurate it is, what it costs.

    ``energy`` is the measurement as a dict (:meth:`compresslab.protocol.EnergyResult.to_dict`),
    so every figure keeps its sampler, provenance and CI. Failed trials have ``error`` set (the
    exception's type and message) and no figures.
    """

    number: int
    state: str
    variant: str
    is_baseline: bool
    params: dict[str, Any] = field(default_factory=dict)
    accuracy: float | None = None
    accuracy_ci95: tuple[float, float] | None = None
    feasible: bool | None = None
    energy: dict[str, Any] | None = None
    modeled_j_per_inference: float | None = None
    n_params: int | None = None
    macs_per_inference: float | None = None
    size_bytes: int | None = None
    memory_bytes: int | None = None
    sparsity: float | None = None
    error: str | None = None
    screened: str | None = None
    screen_accuracy: float | None = None
    duration_s: float | None = None
    reused_from: int | None = None
    host: str | None = None
    #: What the build said about the variant (e.g. layers a quantizer kept in float).
    notes: tuple[str, ...] = ()
    #: The ratio to the baseline measured paired in this trial (windows interleaved ABBA):
    #: ``ratio``, ``ci95_low``, ``ci95_high``, ``pairs`` (None for unpaired, older studies).
    vs_baseline: dict[str, Any] | None = None
    #: The baseline's absolute figure from the same span of time (the pairs' other side).
    reference_energy: dict[str, Any] | None = None
    #: A re-measurement after the search, paired with the baseline with more pairs.
    confirmed: dict[str, Any] | None = None
    #: The baseline trial's own measured joules per inference: the scale of paired figures.
    baseline_j: float | None = None
    #: Relative 95% half-width of one absolute measurement's spread between measurements,
    #: from the baseline measured again beside every variant of the study (None: unknown).
    repeatability_rel: float | None = None
    #: Not measured: a calibrated prediction said, with its stated error, that the frontier
    #: dominates it (``reason``, ``j_per_inference``, ``error_rel``, ``dominated_by`` ...).
    predicted: dict[str, Any] | None = None
    #: Wall and CPU seconds per part of its evaluation (build, finetune, evaluate, measure).
    parts: dict[str, Any] | None = None
    #: What the task measured besides its metric (a language model: perplexity, its interval
    #: and its ratio to the baseline's); empty for classifiers.
    quality: dict[str, Any] = field(default_factory=dict)
    #: Sample outputs (a language model: ``{"prompt", "answer"}`` for fixed prompts).
    answers: tuple[dict[str, str], ...] = ()
    #: Phases of the workload measured on their own (a generation: ``prefill``), as
    #: :meth:`compresslab.protocol.EnergyResult.to_dict` dicts.
    phases: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def evaluated(self) -> bool:
        """A distinct variant evaluated: measured, screened out or predicted dominated."""
        done = self.complete or self.screened is not None or self.predicted is not None
        return self.reused_from is None and done

    @property
    def complete(self) -> bool:
        """True when the variant was built, evaluated and measured."""
        return self.state == "COMPLETE" and self.accuracy is not None and self.energy is not None

    @property
    def measured_j_per_inference(self) -> float:
        """Joules per inference as measured in this trial's own windows (``nan``: none)."""
        return float(self.energy["energy_j_per_inference"]) if self.energy else math.nan

    @property
    def ratio_vs_baseline(self) -> float | None:
        """Energy relative to the baseline, from paired windows (None: not paired)."""
        if self.vs_baseline is None or not self.complete:
            return None
        return float(self.vs_baseline["ratio"])

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
        if self.ratio_vs_baseline is not None and base_j is not None and not self.is_baseline:
            vs = self.vs_baseline or {}
            return (float(vs["ci95_high"]) - float(vs["ci95_low"])) / 2 * base_j
        within = float((self.energy or {}).get("ci95_j_per_inference", math.nan))
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
        return str(self.energy["provenance"]) if self.energy else "-"


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


@dataclass(frozen=True)
class SearchResult:
    """Everything a report needs: the recipe's identity, the trials, the frontier, the context."""

    recipe_name: str
    study_name: str
    storage: str
    trials: list[TrialRecord]
    baseline_accuracy: float
    min_accuracy: float
    tolerance: str
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def baseline(self) -> TrialRecord | None:
        """The measured uncompressed model, if its trial completed."""
        return next((t for t in self.trials if t.is_baseline and t.complete), None)

    @property
    def frontier(self) -> list[TrialRecord]:
        """Feasible non-dominated variants, cheapest first."""
        return pareto_front(self.trials)

    def best_saving(self) -> TrialRecord | None:
        """The feasible variant with the least energy per inference."""
        front = self.frontier
        return front[0] if front else None

    @property
    def completed(self) -> list[TrialRecord]:
        """Trials that completed."""
        return [t for t in self.trials if t.complete]

    @property
    def failed(self) -> list[TrialRecord]:
        """Trials that failed, with their reasons."""
        return [t for t in self.trials if t.state == "FAIL"]

    @property
    def screened(self) -> list[TrialRecord]:
        """Variants not measured for energy because they were clearly below the tolerance."""
        return [t for t in self.trials if t.screened is not None and t.reused_from is None]

    @property
    def predicted(self) -> list[TrialRecord]:
        """Variants not measured because a calibrated prediction said they are dominated."""
        return [t for t in self.trials if t.predicted is not None and t.reused_from is None]

    @property
    def reused(self) -> list[TrialRecord]:
        """Trials that reused an earlier trial's result (the same variant proposed again)."""
        return [t for t in self.trials if t.reused_from is not None]

    @property
    def measured(self) -> list[TrialRecord]:
        """Distinct variants measured for energy (completed, not reused)."""
        return [t for t in self.completed if t.reused_from is None]

    def counts(self) -> str:
        """``N variants measured, N screened out, N repeats reused, N failed``."""
        predicted = f"{len(self.predicted)} predicted dominated, " if self.predicted else ""
        return (
            f"{len(self.measured)} variants measured, {len(self.screened)} screened out, "
            f"{predicted}{len(self.reused)} repeats reused, {len(self.failed)} failed"
        )


class SearchInterrupted(KeyboardInterrupt):
    """A search stopped by Ctrl-C: how far it got, and what its study held then.

    Still a :class:`KeyboardInterrupt` (code that stops on one stops on this); the trials
    completed so far are kept in the study, and the same search run again resumes it.

    Args:
        completed: distinct variants evaluated when it stopped.
        target: the budget of distinct variants.
        result: the study's trials at that moment (None if they could not be read).
    """

    def __init__(self, *, completed: int, target: int, result: SearchResult | None) -> None:
        super().__init__(self.line(completed, target))
        self.completed = completed
        self.target = target
        self.result = result

    @staticmethod
    def line(completed: int, target: int) -> str:
        """The one line that says so."""
        return (
            f"interrupted after {completed} of {target} variants; run the same command again "
            "to resume"
        )
