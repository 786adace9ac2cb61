"""What the gate decides, from the paired ratio's interval, the modeled figures and accuracy.

The energy check: the ratio candidate / reference of energy per inference, from windows
interleaved in the same job, with its two-sided ``1 - alpha`` interval (Student t on the pairs'
log ratios). Against the limit ``1 + max_increase``:

- the interval lies wholly above it: **regression**;
- its upper end is at or below it: **pass**;
- it straddles the limit: **inconclusive** (the gate measures once more with more pairs
  first; what a still inconclusive result does is ``check.on_inconclusive``).

The structural check (modeled tier, deterministic) fails when the model does more counted work
than ``modeled_max_increase`` allows; the accuracy check (:mod:`.accuracy`) when the paired
interval of the accuracy difference lies wholly below ``-max_accuracy_drop``. Either fails the
gate whatever the energy check says; an accuracy difference the examples do not decide makes
the gate inconclusive, like an energy interval that straddles its limit.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from compresslab.check.accuracy import AccuracyCheck
from compresslab.stats import RatioInterval

#: Float rounding of (joules x calls) / calls: the modeled figure is otherwise deterministic.
MODELED_RTOL = 1e-9

PASS, REGRESSION, INCONCLUSIVE = "pass", "regression", "inconclusive"


def ratio_interval(
    numerators: Sequence[float], denominators: Sequence[float], *, alpha: float
) -> RatioInterval:
    """The paired ratio with its two-sided ``1 - alpha`` interval (Student t on log ratios).

    Raises:
        ValueError: fewer than two pairs, or a value that is not positive.
    """
    from scipy import stats

    if len(numerators) != len(denominators) or len(numerators) < 2:
        raise ValueError("a paired ratio's interval needs at least two pairs of equal length")
    if min(*numerators, *denominators) <= 0:
        raise ValueError("a ratio of energies needs positive values")
    logs = [math.log(a / b) for a, b in zip(numerators, denominators, strict=True)]
    mean = statistics.fmean(logs)
    half = float(stats.t.ppf(1 - alpha / 2, len(logs) - 1)) * statistics.stdev(logs)
    half /= math.sqrt(len(logs))
    return RatioInterval(math.exp(mean), math.exp(mean - half), math.exp(mean + half), len(logs))


def classify(interval: RatioInterval, limit: float) -> str:
    """``regression``, ``pass`` or ``inconclusive`` for an interval against ``limit``."""
    if interval.low > limit:
        return REGRESSION
    if interval.high <= limit:
        return PASS
    return INCONCLUSIVE


@dataclass(frozen=True)
class Measurement:
    """One paired measurement: the ratio's interval and each side's absolute figure."""

    ratio: float
    low: float
    high: float
    pairs: int
    outcome: str
    candidate_j_per_inference: float
    reference_j_per_inference: float
    contended: bool = False


@dataclass
class EnergyCheck:
    """The paired energy comparison (``outcome`` is ``not measured`` when there was none)."""

    outcome: str
    limit: float
    level: float
    measurements: list[Measurement] = field(default_factory=list)
    provenance: str | None = None
    sampler: str | None = None
    why_not: str | None = None

    @property
    def decisive(self) -> Measurement | None:
        """The measurement the outcome comes from (the last one)."""
        return self.measurements[-1] if self.measurements else None

    def sentence(self) -> str:
        """What the energy check found, in one sentence."""
        m = self.decisive
        if m is None:
            return f"energy not compared: {self.why_not}"
        level = f"{self.level:.0%}"
        text = (
            f"energy per inference {m.ratio:.3f}x the reference ({level} interval "
            f"{m.low:.3f} to {m.high:.3f}, {m.pairs} interleaved pairs, {self.provenance}); "
        )
        if m.outcome == REGRESSION:
            text += f"the whole interval is above the limit {self.limit:.3f}"
        elif m.outcome == PASS:
            text += f"at or below the limit {self.limit:.3f}"
        else:
            text += f"the interval straddles the limit {self.limit:.3f}"
        if len(self.measurements) > 1:
            first = self.measurements[0]
            text += (
                f" (re-measured with {m.pairs} pairs after a first, inconclusive measurement "
                f"of {first.pairs}: {first.ratio:.3f}x, {first.low:.3f} to {first.high:.3f})"
            )
        return text


@dataclass
class SideCheck:
    """A comparison of one figure (modeled J per inference) and its result."""

    reference: float | None
    candidate: float
    passed: bool
    sentence: str

    @property
    def inconclusive(self) -> bool:
        """Never: a deterministic figure decides."""
        return False


@dataclass
class Verdict:
    """The gate's decision and everything that explains it."""

    recipe: str
    outcome: str
    on_inconclusive: str
    reference: str
    measured_as: str
    energy: EnergyCheck
    modeled: SideCheck | None = None
    accuracy: AccuracyCheck | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Whether the gate lets the change through (exit code 0)."""
        return self.exit_code == 0

    @property
    def exit_code(self) -> int:
        """0 pass, 1 regression; inconclusive: 0 or 1 as ``check.on_inconclusive`` says."""
        if self.outcome == REGRESSION:
            return 1
        if self.outcome == INCONCLUSIVE and self.on_inconclusive == "fail":
            return 1
        return 0

    @property
    def reasons(self) -> list[str]:
        """Each check's finding, energy first."""
        out = [self.energy.sentence()]
        out += [c.sentence for c in (self.modeled, self.accuracy) if c is not None]
        if self.outcome == INCONCLUSIVE:
            which = ["energy"] if self.energy.outcome != PASS else []
            which += (
                ["accuracy"] if self.accuracy is not None and self.accuracy.inconclusive else []
            )
            out.append(
                f"inconclusive ({', '.join(which)}): check.on_inconclusive is "
                f"{self.on_inconclusive}, so the gate "
                + ("passes (exit 0)" if self.on_inconclusive == "pass" else "fails (exit 1)")
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (``--json``)."""
        return {
            **asdict(self),
            "passed": self.passed,
            "exit_code": self.exit_code,
            "reasons": self.reasons,
        }

    def markdown(self) -> str:
        """A summary for a pull-request comment or ``$GITHUB_STEP_SUMMARY``."""
        head = {PASS: "PASS", REGRESSION: "REGRESSION", INCONCLUSIVE: "INCONCLUSIVE"}
        lines = [
            f"### compresslab energy gate: {head[self.outcome]} ({self.recipe})",
            "",
            f"Reference: {self.reference}. Measured as: {self.measured_as}.",
            "",
            "| check | reference | candidate | result |",
            "|---|---:|---:|---|",
        ]
        e = self.energy
        for i, m in enumerate(e.measurements):
            label = "energy / inference" + (" (first)" if i < len(e.measurements) - 1 else "")
            lines.append(
                f"| {label}, {e.provenance}, {m.pairs} pairs | "
                f"{m.reference_j_per_inference:.4g} J | {m.candidate_j_per_inference:.4g} J | "
                f"{m.ratio:.3f}x ({e.level:.0%}: {m.low:.3f} to {m.high:.3f}; limit "
                f"{e.limit:.3f}): {m.outcome} |"
            )
        if not e.measurements:
            lines.append(f"| energy / inference | | | not compared: {e.why_not} |")
        if self.modeled is not None:
            ref = f"{self.modeled.reference:.4g} J" if self.modeled.reference else "-"
            lines.append(
                f"| modeled energy (structural) | {ref} | {self.modeled.candidate:.4g} J | "
                f"{'pass' if self.modeled.passed else 'regression'} |"
            )
        if self.accuracy is not None:
            lines.append(self.accuracy.row())
        lines += [""] + [f"- {r}" for r in self.reasons]
        lines += [f"- warning: {w}" for w in self.warnings]
        return "\n".join(lines) + "\n"


def modeled_check(reference: float | None, candidate: float, *, max_increase: float) -> SideCheck:
    """The structural check: the deterministic modeled figure may not rise beyond the limit."""
    if reference is None or reference <= 0:
        return SideCheck(
            None,
            candidate,
            True,
            f"modeled energy per inference {candidate:.4g} J; the reference's is unknown, so "
            "the structural check was skipped",
        )
    ratio = candidate / reference
    limit = 1 + max(max_increase, MODELED_RTOL)
    if ratio > limit:
        return SideCheck(
            reference,
            candidate,
            False,
            f"modeled energy per inference rose {(ratio - 1) * 100:.2f}% ({reference:.4g} -> "
            f"{candidate:.4g} J): the model does more counted work per inference (structural "
            f"check, limit +{max_increase:.0%})",
        )
    return SideCheck(
        reference,
        candidate,
        True,
        f"modeled energy per inference changed {(ratio - 1) * 100:+.2f}% (structural check)",
    )


def combine(energy: EnergyCheck, *checks: SideCheck | AccuracyCheck | None) -> str:
    """The gate's outcome: a regression when any check failed.

    Else ``pass`` when energy passed and no other check is inconclusive; else ``inconclusive``.
    """
    if energy.outcome == REGRESSION or any(c is not None and not c.passed for c in checks):
        return REGRESSION
    if energy.outcome == PASS and not any(c is not None and c.inconclusive for c in checks):
        return PASS
    return INCONCLUSIVE
