"""The recipe's schema: pydantic models of every section, unknown keys refused."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SerializerFunctionWrapHandler,
    Tag,
    field_validator,
    model_serializer,
    model_validator,
)

from compresslab.carbon import INTENSITY_G_PER_KWH

Scalar = bool | int | float | str


_STORAGE_URL = re.compile(r"^(sqlite:///.+|(postgresql|mysql)(\+\w+)?://.+|journal:.+)$")


def storage_problem(url: str) -> str | None:
    """Why ``url`` is not a study storage compresslab can use (None when it is)."""
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


class RaplOptions(_Strict):
    """Which RAPL domains to count (package always; DRAM and psys on request)."""

    domains: list[Literal["package", "dram", "psys"]] = Field(
        default_factory=lambda: list[Literal["package", "dram", "psys"]](["package"])
    )
    root: str | None = None

    @model_validator(mode="after")
    def _package_first(self) -> RaplOptions:
        if "package" not in self.domains:
            raise ValueError("`domains` must include `package` (the CPU package counter)")
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
    contention: ContentionSpec = Field(default_factory=ContentionSpec)

    @model_validator(mode="after")
    def _windows(self) -> EnergySpec:
        if self.max_windows < self.min_windows:
            raise ValueError(
                f"max_windows ({self.max_windows}) is below min_windows ({self.min_windows})"
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
    #: ``auto``: an exhaustive grid when the whole space fits in ``trials``, else NSGA-II.
    sampler: Literal["auto", "nsga2", "tpe", "gp", "random", "grid"] = "auto"
    seed: int = 0
    storage: str | None = None
    study_name: str | None = Field(default=None, min_length=1)
    tolerance: Tolerance = Field(default_factory=lambda: Tolerance(absolute=0.01))
    #: Accuracy is first computed on this many held-out examples; a variant whose 95%
    #: interval lies wholly below the tolerance is not measured for energy (0 disables).
    screen_examples: int = Field(default=200, ge=0)
    #: After the search, the frontier (and so the best variant within the tolerance) is
    #: measured again paired with the baseline, this many pairs each (0: no confirmation).
    confirm_pairs: int = Field(default=6, ge=0, le=1000)

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
    """The CI regression gate's thresholds (``compresslab check``)."""

    #: Measured/integrated tier: fail when energy per inference rose by more than this
    #: fraction *and* the rise is statistically significant (Welch's t-test at ``alpha``).
    max_increase: float = Field(default=0.05, ge=0, le=10)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    #: Modeled tier (deterministic): fail on any rise beyond this fraction (0 = exact).
    modeled_max_increase: float = Field(default=0.0, ge=0, le=10)
    #: Fail when accuracy fell by more than this (absolute); null = accuracy not gated.
    max_accuracy_drop: float | None = Field(default=None, ge=0, le=1)


class ReportSpec(_Strict):
    """Projections in the report: a request rate, and an electricity price."""

    requests_per_s: float = Field(default=10.0, gt=0, le=1e9)
    price_per_kwh: float = Field(default=0.15, ge=0, le=100)
    currency: str = Field(default="USD", min_length=1, max_length=8)


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

    @model_validator(mode="after")
    def _positive_ints(self) -> RuntimeSpec:
        limit = self.power_limit_w
        if limit is not None:
            bounds = (
                [limit.low, limit.high]
                if isinstance(limit, ParamRange)
                else list(limit.choices)
                if isinstance(limit, ParamChoices)
                else [limit]
            )
            for v in bounds:
                if isinstance(v, bool) or not isinstance(v, int | float) or v <= 0:
                    raise ValueError(f"`power_limit_w` values must be watts > 0, not {v!r}")
        for name in ("threads", "batch_size"):
            spec = getattr(self, name)
            values: list[Any]
            if spec is None:
                continue
            if isinstance(spec, ParamRange):
                if not spec.is_int:
                    raise ValueError(f"`{name}` is an integer: use integer bounds")
                values = [spec.low, spec.high]
            elif isinstance(spec, ParamChoices):
                values = list(spec.choices)
            else:
                values = [spec]
            for v in values:
                if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                    raise ValueError(f"`{name}` values must be integers >= 1, not {v!r}")
        cache = self.kv_cache
        if cache is not None:
            choices = list(cache.choices) if isinstance(cache, ParamChoices) else [cache]
            if isinstance(cache, ParamRange) or not all(isinstance(v, bool) for v in choices):
                raise ValueError("`kv_cache` is true, false or {choices: [true, false]}")
        return self


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
