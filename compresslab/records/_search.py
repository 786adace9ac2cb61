"""A search's result as plain records: its trials, its frontier, the context a report needs."""

from __future__ import annotations

from dataclasses import dataclass, field

from compresslab.records._info import StudyInfo
from compresslab.records._trial import TrialRecord, pareto_front


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
    #: How the study was run, on what, and what it learnt (everything but the trials).
    info: StudyInfo = field(default_factory=StudyInfo)

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
