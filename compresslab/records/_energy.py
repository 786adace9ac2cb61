"""An energy figure as measured: provenance, the per-inference result, and contention seen."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

from compresslab import units


class Provenance(StrEnum):
    """How an energy figure was obtained, from strongest to weakest evidence."""

    MEASURED = "measured"
    INTEGRATED = "integrated"
    ESTIMATED = "estimated"
    MODELED = "modeled"

    @property
    def rank(self) -> int:
        """0 for the strongest evidence (measured), 3 for the weakest (modeled)."""
        return list(Provenance).index(self)


@dataclass(frozen=True)
class Contention:
    """What other processes did to the machine over a series of windows, and the policy's answer.

    ``foreign_cpus_*`` are CPUs kept busy by other processes (system-wide busy time minus this
    process's), ``steal_frac_mean`` the hypervisor's steal; ``contended`` says whether they
    went past the protocol's ``max_foreign_cpus`` in any window; ``observed`` whether the
    counters could be read at all.
    """

    policy: str = "flag"
    max_foreign_cpus: float | None = None
    foreign_cpus_mean: float | None = None
    foreign_cpus_max: float | None = None
    steal_frac_mean: float | None = None
    load_1m_max: float | None = None
    windows_rejected: int = 0
    waited_s: float = 0.0
    contended: bool = False
    observed: bool = False


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
    contention: Contention = field(default_factory=Contention)
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
        return self.contention.contended

    def to_dict(self) -> dict[str, object]:
        """JSON-able dict (``--json`` outputs), with the derived ``kwh_per_1k``."""
        from compresslab.records._codec import to_json

        return {**to_json(self), "kwh_per_1k": self.kwh_per_1k}

    @classmethod
    def from_dict(cls, data: object) -> EnergyResult:
        """The result :meth:`to_dict` wrote (or an older version of it)."""
        from compresslab.records._codec import from_json

        return from_json(cls, data)
