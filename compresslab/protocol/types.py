"""What a measurement is asked for and what it returns (settings, workloads, results)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from compresslab import units
from compresslab.energy import Provenance, Selection, select_sampler
from compresslab.recipe import EnergySpec
from compresslab.stats import RatioInterval

CONTENTION_POLICIES = ("flag", "wait", "reject")


@dataclass(frozen=True)
class EnergyResult:
    """Energy per inference of one workload, with how it was obtained and how certain it is.

    ``ci95_windows_j_per_inference`` is the 95% half-width of the mean over the windows,
    widened by how well idle power is known (machine-level samplers): it sees this run's
    seconds only. ``ci95_j_per_inference`` is the interval a user sees: for a standalone
    measurement it also holds the machine's measured repeatability between measurements, in
    quadrature (``repeatability_rel``, relative to the mean, and ``repeatability_source``, in
    words, which also says when none is known yet: see
    :mod:`compresslab.protocol.repeatability`); for a study's trial it is the windows' (the
    study's records widen it by the study's own spread). ``systematic_rel`` is the sampler's
    stated systematic uncertainty on absolute joules (``None``: not stated); it does not shrink
    with more windows and cancels in ratios measured on one machine.
    """

    sampler: str
    provenance: Provenance
    energy_j_per_inference: float
    std_j_per_inference: float
    ci95_j_per_inference: float
    windows: int
    n_inferences: int
    batch_size: int
    latency_s_per_batch: float
    duration_s: float
    window_j_per_inference: tuple[float, ...]
    components_j_per_inference: dict[str, float]
    component_provenance: dict[str, str]
    gross_j_per_inference: float
    idle_power_w: float
    idle_measured: bool
    update_period_s: float
    window_s: float
    metadata: dict[str, str] = field(default_factory=dict)
    ci_target_met: bool = True
    #: Median and 95th percentile of one call's seconds (one batch), throughput in
    #: inferences per second, and the process's peak resident memory over the windows.
    latency_p50_s_per_batch: float = math.nan
    latency_p95_s_per_batch: float = math.nan
    throughput_per_s: float = math.nan
    peak_rss_bytes: int = 0
    systematic_rel: float | None = None
    threads: int | None = None
    contention: dict[str, Any] = field(default_factory=dict)
    #: The windows' own half-width (``nan`` when built without it: then the total's).
    ci95_windows_j_per_inference: float = math.nan
    #: Relative 95% half-width of the machine's repeatability term (None: not applied).
    repeatability_rel: float | None = None
    #: Where the repeatability term came from, or why there is none (None: not considered).
    repeatability_source: str | None = None

    def __post_init__(self) -> None:
        if math.isnan(self.ci95_windows_j_per_inference):
            object.__setattr__(self, "ci95_windows_j_per_inference", self.ci95_j_per_inference)

    @property
    def kwh_per_1k(self) -> float:
        """Kilowatt-hours per 1000 inferences."""
        return units.kwh_per_1k(self.energy_j_per_inference)

    @property
    def ci95_rel(self) -> float:
        """CI half-width relative to the mean."""
        return self.ci95_j_per_inference / self.energy_j_per_inference

    @property
    def contended(self) -> bool:
        """Whether other processes used the machine beyond the protocol's limit meanwhile."""
        return bool(self.contention.get("contended", False))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (the ``--json`` output and trial attributes)."""
        d = asdict(self)
        d["provenance"] = str(self.provenance)
        d["window_j_per_inference"] = list(self.window_j_per_inference)
        d["kwh_per_1k"] = self.kwh_per_1k
        return d


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

    def vs_reference(self) -> dict[str, Any]:
        """The ratio as stored with a trial: value, interval, pairs, order, target met.

        ``ci95_low``/``ci95_high`` are the interval a user sees; ``ci95_low_pairs`` and
        ``ci95_high_pairs`` the pairs' own, with the term's size and source beside them.
        """
        pairs = self.ratio_pairs or self.ratio
        return {
            **self.ratio.to_dict(),
            "ci95_low_pairs": pairs.low,
            "ci95_high_pairs": pairs.high,
            "ratio_repeatability_rel": self.ratio_repeatability_rel,
            "ratio_repeatability_source": self.ratio_repeatability_source,
            "order": "ABBA",
            "ci_target_met": self.ci_target_met,
        }


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
