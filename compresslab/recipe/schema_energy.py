"""The recipe's ``energy`` section: the sampler, the measurement windows, each backend's options."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import Field, model_validator

from compresslab.recipe.schema_base import StrictModel


class EstimateOptions(StrictModel):
    """Coefficients of the CPU estimator; unset means the documented defaults."""

    watts_per_core: float | None = Field(default=None, gt=0, le=1000)
    watts_per_gb: float | None = Field(default=None, ge=0, le=100)


RaplDomain = Literal["package", "dram", "psys"]


class RaplOptions(StrictModel):
    """RAPL counters: which domains, where the tree is, how often it is polled.

    ``psys`` (the platform domain of laptops and some desktops) covers the whole SoC, the
    package and DRAM included: it is an alternative to ``[package]`` or ``[package, dram]``,
    never added on top of them.
    """

    domains: list[RaplDomain] = Field(
        default_factory=lambda: list[RaplDomain](["package"]), min_length=1
    )
    #: The powercap tree; default ``$COMPRESSLAB_POWERCAP_ROOT``, else ``/sys/class/powercap``.
    root: str | None = Field(default=None, min_length=1)
    #: Seconds between reads of the counters; default: derived from each counter's range
    #: and maximum power so that no wrap can be missed (refused when it could miss one).
    poll_interval_s: float | None = Field(default=None, ge=0.001, le=1.0)
    #: The most one zone can draw, in watts; default: twice the zone's largest
    #: ``constraint_*_max_power_uw``, else 1000 W. Implied power above it marks a counter
    #: reset or a torn read (the window is repeated); it also sizes the poll interval.
    max_power_w: float | None = Field(default=None, gt=0, le=100000)

    @model_validator(mode="after")
    def _domains(self) -> RaplOptions:
        problem = rapl_domains_problem(self.domains)
        if problem:
            raise ValueError(problem)
        return self


def rapl_domains_problem(domains: Sequence[str]) -> str | None:
    """Why a list of RAPL domains cannot be counted together (None when it can)."""
    if len(set(domains)) != len(domains):
        return f"`domains` {list(domains)} repeats a domain: list each once"
    if "psys" in domains and len(domains) > 1:
        others = " and ".join(d for d in domains if d != "psys")
        return (
            f"`domains` {list(domains)} asks for psys together with {others}: psys (the "
            "platform domain) covers the whole SoC, the CPU package and DRAM included, so "
            "adding them would count them twice; use [psys] alone, or [package] / "
            "[package, dram]"
        )
    if "dram" in domains and "package" not in domains:
        return (
            f"`domains` {list(domains)} counts DRAM without the CPU package: "
            "use [package, dram] (or [package] alone)"
        )
    return None


class NvmlOptions(StrictModel):
    """NVIDIA GPUs through NVML, and the host CPU energy reported beside them."""

    #: NVML indices (as `nvidia-smi` lists them) to count; default: the GPU torch runs the
    #: model on (``energy.device``), found by its UUID or PCI bus id.
    device_indices: list[Annotated[int, Field(ge=0, le=1023)]] | None = Field(
        default=None, min_length=1
    )
    #: Seconds between power readings on GPUs without an energy counter (integrated).
    poll_interval_s: float = Field(default=0.05, ge=0.001, le=10.0)
    #: The host CPU's energy over the same windows, reported as a component of its own:
    #: ``auto`` (RAPL if readable, else the estimate), ``rapl``, ``estimate``, or ``none``
    #: (the GPU alone).
    host: Literal["auto", "rapl", "estimate", "none"] = "auto"

    @model_validator(mode="after")
    def _distinct(self) -> NvmlOptions:
        if self.device_indices is not None and len(set(self.device_indices)) != len(
            self.device_indices
        ):
            raise ValueError(f"`device_indices` {self.device_indices} repeats an index")
        return self


class ContentionSpec(StrictModel):
    """What a measurement does when other processes use the machine (see the protocol)."""

    #: ``flag``: measure and flag the result; ``wait``: wait up to ``wait_s`` for a quieter
    #: machine before each window; ``reject``: drop a contended window and measure another
    #: (at most ``max_rejected``, then measure on, flagged).
    policy: Literal["flag", "wait", "reject"] = "flag"
    max_foreign_cpus: float = Field(default=0.5, ge=0, le=4096)
    wait_s: float = Field(default=60.0, ge=0, le=86400)
    max_rejected: int = Field(default=10, ge=0, le=10000)


class EnergySpec(StrictModel):
    """How energy per inference is measured."""

    sampler: Literal["auto", "rapl", "nvml", "estimate", "model"] = "auto"
    device: str = Field(default="cpu", pattern=r"^(cpu|cuda(:\d+)?)$")
    batch_size: int = Field(default=64, ge=1, le=65536)
    threads: int | None = Field(default=None, ge=1, le=1024)
    warmup_s: float = Field(default=0.5, ge=0, le=600)
    idle_s: float = Field(default=1.0, ge=0, le=600)
    window_s: float = Field(default=1.0, gt=0, le=3600)
    min_windows: int = Field(default=3, ge=2, le=1000)
    max_windows: int = Field(default=8, ge=2, le=10000)
    target_ci_rel: float = Field(default=0.05, gt=0, lt=1)
    estimate: EstimateOptions = Field(default_factory=EstimateOptions)
    rapl: RaplOptions = Field(default_factory=RaplOptions)
    nvml: NvmlOptions = Field(default_factory=NvmlOptions)
    contention: ContentionSpec = Field(default_factory=ContentionSpec)

    @model_validator(mode="after")
    def _windows(self) -> EnergySpec:
        if self.max_windows < self.min_windows:
            raise ValueError(
                f"max_windows ({self.max_windows}) is below min_windows ({self.min_windows})"
            )
        if self.sampler == "nvml" and not self.device.startswith("cuda"):
            raise ValueError(
                "`sampler: nvml` measures a GPU, but `device` is cpu: the model would run on "
                "the CPU while an idle GPU is measured; set `device: cuda` (or cuda:N), or "
                "pick `sampler: rapl` / `sampler: estimate` for a CPU model"
            )
        return self
