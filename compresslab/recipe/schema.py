"""The recipe's schema: pydantic models of every section, unknown keys refused.

The sections live in their own modules and are re-exported here: :mod:`.schema_space` (the
compression methods, their parameters and the runtime knobs), :mod:`.schema_energy` (the
``energy`` section), :mod:`.schema_search` (the ``search`` section); the task, the carbon
figures, the CI gate, the report and the whole :class:`Recipe` are here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from compresslab.carbon import INTENSITY_G_PER_KWH
from compresslab.recipe.schema_base import StrictModel
from compresslab.recipe.schema_energy import (
    ContentionSpec,
    EnergySpec,
    EstimateOptions,
    NvmlOptions,
    RaplDomain,
    RaplOptions,
    rapl_domains_problem,
)
from compresslab.recipe.schema_search import MAX_SEED, SearchSpec, Tolerance, storage_problem
from compresslab.recipe.schema_space import (
    RUNTIME_BOUNDS,
    UNION_TAGS,
    MethodSpec,
    ParamChoices,
    ParamRange,
    ParamSpec,
    RuntimeSpec,
    Scalar,
)

__all__ = [
    "MAX_SEED",
    "RUNTIME_BOUNDS",
    "UNION_TAGS",
    "CarbonSpec",
    "CheckSpec",
    "ContentionSpec",
    "EnergySpec",
    "EstimateOptions",
    "MethodSpec",
    "NvmlOptions",
    "ParamChoices",
    "ParamRange",
    "ParamSpec",
    "RaplDomain",
    "RaplOptions",
    "Recipe",
    "ReportSpec",
    "RuntimeSpec",
    "Scalar",
    "SearchSpec",
    "TaskSpec",
    "Tolerance",
    "rapl_domains_problem",
    "storage_problem",
]


class TaskSpec(StrictModel):
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


class CarbonSpec(StrictModel):
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


class CheckSpec(StrictModel):
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
    #: The accuracy drop allowed (absolute), decided on the same examples as the baseline's:
    #: the gate fails when the paired interval lies wholly below it, is inconclusive when it
    #: straddles it (check.on_inconclusive decides); null = accuracy not gated.
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


class ReportSpec(StrictModel):
    """Projections in the report: a request rate, and an electricity price."""

    requests_per_s: float = Field(default=10.0, gt=0, le=1e9)
    price_per_kwh: float = Field(default=0.15, ge=0, le=100)
    #: A currency code or symbol (USD, EUR, €): shown in the report beside every cost.
    currency: str = Field(default="USD", pattern=r"^[A-Za-z\p{Sc}]{1,8}$")
    #: The folder of the run history (history.jsonl, history-codecarbon.csv) that every
    #: measure, check and search appends to; "" (the default): the output folder; null: off.
    history: str | None = Field(default="", max_length=4096)


class Recipe(StrictModel):
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
