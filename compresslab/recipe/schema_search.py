"""The recipe's ``search`` section: budget, sampler, seed, storage and accuracy tolerance."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import (
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from compresslab.recipe.schema_base import StrictModel, without_unset

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


class Tolerance(StrictModel):
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
        return without_unset(handler, self, ("perplexity",))

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


class AccuracyEvaluation(StrictModel):
    """How a variant's accuracy is compared with the baseline's: on the same examples, in looks.

    The task's evaluation pool is scored in the same chunks for every model. A variant is first
    compared with the baseline on ``first_examples`` of them (paired: Newcombe's interval of
    the difference); while the decision against the tolerance is ``undecided`` and the pool is
    not exhausted, more examples are added, up to ``looks`` looks in all (geometric steps from
    ``first_examples`` to the whole pool). Each look's interval uses the z of an
    alpha-spending rule (``spending``), so that the decision is wrong at most 5% of the time
    over all the looks together (see compresslab.paired.alpha_spending).
    """

    #: Examples of the first look (the whole pool when it holds fewer).
    first_examples: int = Field(default=400, ge=1, le=10_000_000)
    #: Looks at most, the first one included (1: the whole pool at once).
    looks: int = Field(default=4, ge=1, le=20)
    #: ``pocock``: the same z at every look (early looks stop clear cases: cheapest);
    #: ``obrien-fleming``: almost nothing spent early, the last look's z near 1.96;
    #: ``bonferroni``: alpha / looks per look (conservative).
    spending: Literal["pocock", "obrien-fleming", "bonferroni"] = "pocock"
    #: What a tolerance the pool cannot resolve does before any work (`compresslab check`,
    #: `compresslab search`): ``warn`` (the numbers, and the search goes on) or ``error``.
    on_unresolvable: Literal["warn", "error"] = "warn"


class SearchSpec(StrictModel):
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
    #: The paired, sequential comparison of each variant's accuracy with the baseline's.
    evaluation: AccuracyEvaluation = Field(default_factory=AccuracyEvaluation)
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
