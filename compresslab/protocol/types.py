"""What a measurement is asked for and what it returns (settings, workloads, results)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from compresslab.energy import Selection, select_sampler
from compresslab.recipe import EnergySpec
from compresslab.records import EnergyResult, PairedRatio
from compresslab.stats import RatioInterval

CONTENTION_POLICIES = ("flag", "wait", "reject")


@dataclass(frozen=True)
class PairedResult:
    """A candidate measured against a reference, their windows interleaved (ABBA).

    ``ratio`` is candidate / reference energy per inference, from the pairs of adjacent
    windows; ``reference`` and ``candidate`` keep each side's absolute figure.

    ``ratio_pairs`` is the interval the pairs alone give (one span of seconds); ``ratio`` is
    the interval a user sees: the pairs' alone as measured, or, once widened by the machine's
    measured repeatability of paired ratios between spans
    (:mod:`compresslab.protocol.ratio_repeatability`), the two in quadrature on the log scale
    (``ratio_repeatability_rel``, the term's 95% half-width of the log ratio, and
    ``ratio_repeatability_source``, in words, which also says when none is known yet; both
    None: not considered). ``ci_target_met`` is judged on the pairs (the stopping rule).
    """

    reference: EnergyResult
    candidate: EnergyResult
    ratio: RatioInterval
    ci_target_met: bool
    #: The pairs' own interval (None when built without it: then ``ratio``'s).
    ratio_pairs: RatioInterval | None = None
    #: 95% half-width of the log ratio between spans, measured on this machine (None: not
    #: applied).
    ratio_repeatability_rel: float | None = None
    #: Where that term came from, or why there is none (None: not considered).
    ratio_repeatability_source: str | None = None

    def __post_init__(self) -> None:
        if self.ratio_pairs is None:
            object.__setattr__(self, "ratio_pairs", self.ratio)

    def vs_reference(self) -> PairedRatio:
        """The ratio as stored with a trial: value, interval, pairs, order, target met.

        ``ci95_low``/``ci95_high`` are the interval a user sees; ``ci95_low_pairs`` and
        ``ci95_high_pairs`` the pairs' own, with the term's size and source beside them.
        """
        pairs = self.ratio_pairs or self.ratio
        return PairedRatio(
            ratio=self.ratio.ratio,
            ci95_low=self.ratio.low,
            ci95_high=self.ratio.high,
            pairs=self.ratio.pairs,
            ci95_low_pairs=pairs.low,
            ci95_high_pairs=pairs.high,
            ratio_repeatability_rel=self.ratio_repeatability_rel,
            ratio_repeatability_source=self.ratio_repeatability_source,
            order="ABBA",
            ci_target_met=self.ci_target_met,
        )


@dataclass(frozen=True)
class Protocol:
    """Settings of the protocol (see the module docstring); built from a recipe's ``energy``."""

    warmup_s: float = 0.5
    window_s: float = 1.0
    min_windows: int = 3
    max_windows: int = 8
    target_ci_rel: float = 0.05
    idle_s: float = 1.0
    contention: str = "flag"
    max_foreign_cpus: float = 0.5
    contention_wait_s: float = 60.0
    max_rejected: int = 10

    @classmethod
    def from_spec(cls, spec: EnergySpec) -> Protocol:
        """The protocol a recipe's energy section asks for."""
        return cls(
            warmup_s=spec.warmup_s,
            window_s=spec.window_s,
            min_windows=spec.min_windows,
            max_windows=spec.max_windows,
            target_ci_rel=spec.target_ci_rel,
            idle_s=spec.idle_s,
            contention=spec.contention.policy,
            max_foreign_cpus=spec.contention.max_foreign_cpus,
            contention_wait_s=spec.contention.wait_s,
            max_rejected=spec.contention.max_rejected,
        )


@dataclass(frozen=True)
class Workload:
    """What one side of a measurement runs: ``fn`` runs ``inferences_per_call`` inferences.

    ``threads`` is torch's intra-op threads while its windows run (``None``: unchanged);
    ``model`` and ``inputs`` let the modeled tier count what ``fn`` runs.
    """

    fn: Callable[[], object]
    inferences_per_call: int
    threads: int | None = None
    model: nn.Module | None = None
    inputs: torch.Tensor | None = None


def energy_options(spec: EnergySpec) -> dict[str, dict[str, object]]:
    """Backend options by sampler name, from a recipe's ``energy`` section."""
    return {
        "estimate": spec.estimate.model_dump(exclude_none=True),
        "rapl": spec.rapl.model_dump(exclude_none=True),
        "nvml": spec.nvml.model_dump(exclude_none=True),
    }


def select_for(spec: EnergySpec) -> Selection:
    """The sampler a recipe's ``energy`` section asks for, with its backend options."""
    return select_sampler(spec.sampler, options=energy_options(spec), device=spec.device)
