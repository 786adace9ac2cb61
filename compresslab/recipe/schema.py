"""The recipe's schema: pydantic models of every section, unknown keys refused."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SerializerFunctionWrapHandler,
    Tag,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from compresslab.carbon import INTENSITY_G_PER_KWH

Scalar = bool | int | float | str

#: The largest ``search.seed`` (numpy's and Optuna's samplers take 32-bit seeds).
MAX_SEED = 2**32 - 1


# The storages docs/fleet.md documents (and the tests run): SQLite, a journal file, PostgreSQL.
_STORAGE_URL = re.compile(r"^(sqlite:///.+|postgresql(\+\w+)?://.+|journal:.+)$")


def storage_problem(url: str) -> str | None:
    """Why ``url`` is not a study storage compresslab can use (None when it is)."""
    path = url.removeprefix("sqlite:///").split("?", 1)[0] if url.startswith("sqlite:") else None
    if path is not None and (
        url.rstrip("/") == "sqlite:" or not path or ":memory:" in path or "mode=memory" in url
    ):
        return (
            f"'{url}' is an SQLite database in memory: it vanishes when the command ends, with "
            "every trial, and a resumed search could not find it; use a file path, e.g. "
            "sqlite:///reports/study.db"
        )
    if _STORAGE_URL.match(url):
        return None
    return (
        f"unsupported storage URL '{url}': use sqlite:///path/study.db (one process), "
        "journal:///path/study.log (several processes on one host) or "
        "postgresql://user@host/database (several hosts)"
    )


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ParamRange(_Strict):
    """A numeric range to search; integers if ``low`` and ``high`` are both integers."""

    low: float | int
    high: float | int
    step: float | int | None = Field(default=None, gt=0)
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> ParamRange:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) is above high ({self.high}): swap them")
        if self.log and self.low <= 0:
            raise ValueError("a log-scale range needs low > 0")
        if self.log and self.step is not None:
            raise ValueError("a range cannot have both `step` and `log: true`: drop one")
        return self

    @property
    def is_int(self) -> bool:
        """True when both bounds (and the step, if any) are integers."""
        return all(isinstance(v, int) and not isinstance(v, bool) for v in self._numbers())

    def _numbers(self) -> list[float | int]:
        return [self.low, self.high] + ([self.step] if self.step is not None else [])


class ParamChoices(_Strict):
    """A categorical choice."""

    choices: list[Scalar | None] = Field(min_length=1)


def _param_kind(value: Any) -> str:
    if isinstance(value, dict | ParamChoices) and (
        isinstance(value, ParamChoices) or "choices" in value
    ):
        return "choices"
    if isinstance(value, dict | ParamRange):
        return "range"
    return "value"


# Tagged so that an error names the form the user meant (a range, choices or a fixed value),
# not every member of the union.
ParamSpec = Annotated[
    Annotated[ParamRange, Tag("range")]
    | Annotated[ParamChoices, Tag("choices")]
    | Annotated[Scalar, Tag("value")],
    Discriminator(_param_kind),
]
_UNION_TAGS = {"range", "choices", "value", "bool", "int", "float", "str"}


class MethodSpec(_Strict):
    """One compression method in the search space, with its parameters' ranges."""

    method: str = Field(min_length=1)
    params: dict[str, ParamSpec] = Field(default_factory=dict)


class TaskSpec(_Strict):
    """The model, its evaluation data and its metric.

    Exactly one of ``name`` (a provider registered in :mod:`compresslab.tasks`) and
    ``entrypoint`` (``"package.module:function"``, which runs that code) is given.
    """

    name: str | None = None
    entrypoint: str | None = Field(default=None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    options: dict[str, Any] = Field(default_factory=dict)
    metric: Literal["accuracy", "macro_f1"] = "accuracy"
    #: Module names (as in ``model.named_modules()``) that pruning must keep whole, besides
    #: the classifier, which is found automatically.
    keep_layers: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_source(self) -> TaskSpec:
        if (self.name is None) == (self.entrypoint is None):
            raise ValueError(
                "give exactly one of `name` (a built-in task such as `digits`) and "
                "`entrypoint` (`package.module:function` returning a Task)"
            )
        return self


class EstimateOptions(_Strict):
    """Coefficients of the CPU estimator; unset means the documented defaults."""

    watts_per_core: float | None = Field(default=None, gt=0, le=1000)
    watts_per_gb: float | None = Field(default=None, ge=0, le=100)


RaplDomain = Literal["package", "dram", "psys"]


class RaplOptions(_Strict):
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


class NvmlOptions(_Strict):
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


class ContentionSpec(_Strict):
    """What a measurement does when other processes use the machine (see the protocol)."""

    #: ``flag``: measure and flag the result; ``wait``: wait up to ``wait_s`` for a quieter
    #: machine before each window; ``reject``: drop a contended window and measure another
    #: (at most ``max_rejected``, then measure on, flagged).
    policy: Literal["flag", "wait", "reject"] = "flag"
    max_foreign_cpus: float = Field(default=0.5, ge=0, le=4096)
    wait_s: float = Field(default=60.0, ge=0, le=86400)
    max_rejected: int = Field(default=10, ge=0, le=10000)


class EnergySpec(_Strict):
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


def _without_unset(
    handler: SerializerFunctionWrapHandler, value: Any, names: tuple[str, ...]
) -> Any:
    """``value`` dumped by ``handler``, without the fields ``names`` where they are unset.

    For fields added after recipes were first hashed: a recipe that does not use one dumps,
    and so hashes, as it did before the field existed.
    """
    out = handler(value)
    if isinstance(out, dict):
        for name in names:
            if out.get(name) is None:
                out.pop(name, None)
    return out


class Tolerance(_Strict):
    """The accuracy drop from the baseline that a variant may have: absolute or relative.

    ``perplexity`` (tasks with a perplexity: causal language models) also bounds the rise of
    the variant's perplexity over the baseline's on the same text, relative (0.05: at most 5%
    higher); a variant above it is not measured for energy.
    """

    absolute: float | None = Field(default=None, ge=0, le=1)
    relative: float | None = Field(default=None, ge=0, le=1)
    perplexity: float | None = Field(default=None, ge=0, le=100)

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> Any:
        return _without_unset(handler, self, ("perplexity",))

    @model_validator(mode="after")
    def _one_kind(self) -> Tolerance:
        if (self.absolute is None) == (self.relative is None):
            raise ValueError(
                "give exactly one of `absolute` (e.g. 0.01 = one accuracy point) "
                "and `relative` (e.g. 0.02 = 2% of the baseline's accuracy)"
            )
        return self

    def min_accuracy(self, baseline_accuracy: float) -> float:
        """The lowest accuracy within tolerance of ``baseline_accuracy``."""
        if self.absolute is not None:
            return baseline_accuracy - self.absolute
        assert self.relative is not None
        return baseline_accuracy * (1.0 - self.relative)

    def describe(self) -> str:
        """Human wording, e.g. ``1 point absolute``."""
        ppl = "" if self.perplexity is None else f"; perplexity at most +{self.perplexity * 100:g}%"
        if self.absolute is not None:
            return f"{self.absolute * 100:g} points absolute{ppl}"
        assert self.relative is not None
        return f"{self.relative * 100:g}% relative{ppl}"


class SearchSpec(_Strict):
    """The Optuna search: budget, sampler, seed, storage, accuracy tolerance."""

    trials: int = Field(default=30, ge=1, le=100000)
    #: ``auto``: an exhaustive grid when the whole space fits in ``trials``, else the sampler
    #: the replay benchmark found best at this budget and space size (compresslab.study.samplers).
    sampler: Literal["auto", "nsga2", "tpe", "tpe_joint", "gp", "random", "grid"] = "auto"
    #: numpy's and Optuna's samplers take 32-bit seeds.
    seed: int = Field(default=0, ge=0, le=MAX_SEED, strict=True)
    storage: str | None = None
    study_name: str | None = Field(
        default=None, min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$"
    )
    tolerance: Tolerance = Field(default_factory=lambda: Tolerance(absolute=0.01))
    #: Accuracy is first computed on this many held-out examples; a variant whose 95%
    #: interval lies wholly below the tolerance is not measured for energy (0 disables).
    screen_examples: int = Field(default=200, ge=0, le=1_000_000)
    #: After the search, the frontier (and so the best variant within the tolerance) is
    #: measured again paired with the baseline, this many pairs each (0: no confirmation).
    confirm_pairs: int = Field(default=6, ge=0, le=1000)
    #: Skip the energy measurement of a variant that the modeled tier, calibrated on the
    #: variants this study measured on this machine, predicts (with its held-out error) to be
    #: dominated by the frontier (compresslab.study.predict). false: measure every variant.
    predict: bool = True
    #: Variants measured on this machine before a calibration is fitted and used.
    predict_min_measured: int = Field(default=8, ge=3, le=100000)
    #: The largest held-out relative error (90th percentile, leave-one-out) at which
    #: predictions are used.
    predict_max_error: float = Field(default=0.5, gt=0.0, le=1.0)

    @field_validator("storage")
    @classmethod
    def _known_storage(cls, url: str | None) -> str | None:
        problem = storage_problem(url) if url is not None else None
        if problem:
            raise ValueError(problem)
        return url


class CarbonSpec(_Strict):
    """How kWh become gCO2e: a region of the offline table or an intensity, and a PUE."""

    region: str = "WORLD"
    intensity_g_per_kwh: float | None = Field(default=None, ge=0, le=2000)
    pue: float = Field(default=1.0, ge=1.0, le=5.0)

    @model_validator(mode="after")
    def _known_region(self) -> CarbonSpec:
        if self.intensity_g_per_kwh is None and self.region.upper() not in INTENSITY_G_PER_KWH:
            raise ValueError(
                f"no intensity for region '{self.region}' in the offline table: use one of "
                f"{', '.join(INTENSITY_G_PER_KWH)}, or set intensity_g_per_kwh"
            )
        return self


class CheckSpec(_Strict):
    """The CI regression gate's thresholds and measurement (``compresslab check``).

    The candidate is measured against a reference model in the same job, their windows
    interleaved (ABBA), and the gate decides on the ratio's confidence interval.
    """

    #: Fail when the candidate / reference ratio of energy per inference lies wholly above
    #: ``1 + max_increase``; pass when its interval's upper end is at or below it.
    max_increase: float = Field(default=0.05, ge=0, le=10)
    #: The ratio's interval is two-sided at level ``1 - alpha``.
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    #: The structural check (deterministic modeled tier): fail on a rise beyond this fraction.
    modeled_max_increase: float = Field(default=0.0, ge=0, le=10)
    #: Fail when accuracy fell by more than this (absolute); null = accuracy not gated.
    max_accuracy_drop: float | None = Field(default=None, ge=0, le=1)
    #: Pairs of interleaved windows of the first measurement.
    pairs: int = Field(default=6, ge=2, le=500)
    #: When the first interval straddles the limit, measure once more with this many pairs
    #: (twice ``pairs`` when that is more) and decide on that (0: no second measurement).
    retry_pairs: int = Field(default=12, ge=0, le=1000)
    #: What an interval that still straddles the limit does: ``pass`` (exit 0, with a
    #: warning) or ``fail`` (exit 1).
    on_inconclusive: Literal["pass", "fail"] = "pass"

    @model_validator(mode="after")
    def _retry_is_more(self) -> CheckSpec:
        if self.retry_pairs == 1:
            raise ValueError("retry_pairs must be 0 (no second measurement) or at least 2")
        return self


class ReportSpec(_Strict):
    """Projections in the report: a request rate, and an electricity price."""

    requests_per_s: float = Field(default=10.0, gt=0, le=1e9)
    price_per_kwh: float = Field(default=0.15, ge=0, le=100)
    #: A currency code or symbol (USD, EUR, €): shown in the report beside every cost.
    currency: str = Field(default="USD", pattern=r"^[A-Za-z\p{Sc}]{1,8}$")
    #: The folder of the run history (history.jsonl, history-codecarbon.csv) that every
    #: measure, check and search appends to; "" (the default): the output folder; null: off.
    history: str | None = Field(default="", max_length=4096)


#: The valid range of each runtime knob (threads as energy.threads, batch sizes as
#: energy.batch_size, a GPU's power limit in watts).
RUNTIME_BOUNDS: dict[str, tuple[int, int]] = {
    "threads": (1, 1024),
    "batch_size": (1, 65536),
    "power_limit_w": (0, 5000),
}


class RuntimeSpec(_Strict):
    """How the model is run, as search knobs: energy per inference depends on it too.

    Each knob is a fixed value, a range or choices (like method parameters); unset knobs keep
    ``energy.threads`` / ``energy.batch_size``.
    """

    threads: ParamSpec | None = None
    batch_size: ParamSpec | None = None
    #: NVIDIA GPUs only: the power limit (W) set through NVML while measuring, then restored.
    power_limit_w: ParamSpec | None = None
    #: Generative tasks only: keep the KV cache while generating (true, false, or choices).
    kv_cache: ParamSpec | None = None

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> Any:
        return _without_unset(handler, self, ("kv_cache",))

    @field_validator("threads", "batch_size", "power_limit_w")
    @classmethod
    def _in_bounds(cls, spec: Any, info: ValidationInfo) -> Any:
        name = str(info.field_name)
        if spec is None:
            return spec
        if isinstance(spec, ParamRange):
            if name != "power_limit_w" and not spec.is_int:
                raise ValueError(f"`{name}` is an integer: use integer bounds")
            values: list[Any] = [spec.low, spec.high]
        elif isinstance(spec, ParamChoices):
            values = list(spec.choices)
        else:
            values = [spec]
        low, high = RUNTIME_BOUNDS[name]
        for v in values:
            if name == "power_limit_w":
                if isinstance(v, bool) or not isinstance(v, int | float):
                    raise ValueError(f"`power_limit_w` values must be watts > 0, not {v!r}")
                if not math.isfinite(v):
                    raise ValueError(f"{v} is not a finite number; valid: watts in (0, {high}]")
                if not 0 < v <= high:
                    raise ValueError(f"{v!r} is outside (0, {high}]; valid: watts in (0, {high}]")
                continue
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ValueError(f"`{name}` values must be integers >= 1, not {v!r}")
            if v > high:
                raise ValueError(
                    f"{v!r} is above the maximum {high}; valid: integer in [{low}, {high}]"
                )
        return spec

    @field_validator("kv_cache")
    @classmethod
    def _a_switch(cls, spec: Any) -> Any:
        if spec is None:
            return spec
        values = list(spec.choices) if isinstance(spec, ParamChoices) else [spec]
        if isinstance(spec, ParamRange) or not all(isinstance(v, bool) for v in values):
            shown = f"{spec.low}..{spec.high}" if isinstance(spec, ParamRange) else values
            raise ValueError(
                f"`kv_cache` is a switch, not {shown!r}; valid: true, false or "
                "{choices: [true, false]}"
            )
        return spec


class Recipe(_Strict):
    """A whole recipe. ``source`` is the file it came from (not part of the YAML)."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=80)]
    description: str = ""
    task: TaskSpec
    compression: list[MethodSpec] = Field(min_length=1)
    runtime: RuntimeSpec = Field(default_factory=RuntimeSpec)
    energy: EnergySpec = Field(default_factory=EnergySpec)
    search: SearchSpec = Field(default_factory=SearchSpec)
    carbon: CarbonSpec = Field(default_factory=CarbonSpec)
    check: CheckSpec = Field(default_factory=CheckSpec)
    report: ReportSpec = Field(default_factory=ReportSpec)
    output: str = "reports"

    @property
    def study_name(self) -> str:
        """The Optuna study name: ``search.study_name`` or the recipe's name."""
        return self.search.study_name or self.name

    def output_dir(self, base: Path | None = None) -> Path:
        """``<output>/<name>``, relative to ``base`` (the working directory by default)."""
        root = Path(self.output)
        if base is not None and not root.is_absolute():
            root = base / root
        return root / self.name


# --- parsing with line numbers ------------------------------------------------------------
