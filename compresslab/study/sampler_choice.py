"""Which Optuna sampler a recipe gets, and why: ``auto`` decides by recorded evidence.

``auto`` decides by evidence. When the whole space fits in the budget it is the exhaustive
grid: every variant once. Otherwise it is the sampler that the replay benchmark
(``benchmarks/search_efficiency.py``, figure 3) found best at the nearest budget, as a share of
the space: every sampler proposes variants of a replayed grid whose every variant was built
and measured once, and is scored by the median share of the full grid's hypervolume it
reaches (10 seeds), on the deterministic modeled table and on the estimated one (this kind of
machine, one noisy measurement per variant). :data:`EVIDENCE` holds those medians; ``auto``
averages them over the replays nearest the recipe's budget share. Rerun the benchmark and
update them when the space, the samplers or Optuna change.

On the evidence so far (averaged over the digits and Fashion-MNIST grids and both tables)
TPE with Optuna's defaults is best at 14% and 51% of the grid, and ``tpe_joint`` (TPE that
models the parameters jointly, with a good set of a quarter of the trials) at 29%: there it
found Fashion-MNIST's front, whose hypervolume hangs on one variant, in 98% of the modeled
grid against TPE's 86%. NSGA-II spends its first generation (a third of the budget) on random
draws and has about two guided generations left at 30 trials. On the estimated tables (one
noisy measurement per variant) no sampler reaches 95% at 29 of 99: which importance wins at a
ratio is noise there, and no sampler can learn noise. Samplers are compared only on replays
that tried them all. No space with more than 99 variants, nor a budget above 50, has been
replayed: there the nearest evidence decides, and the stated reason says how far it is.
MiniLM's space is not replayed: building and measuring its 111 variants takes hours on the
2-core development VM.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from compresslab.errors import RecipeError
from compresslab.recipe import Recipe
from compresslab.study.space import SearchSpace

#: Samplers that ``auto`` may pick from the evidence.
AUTO_CANDIDATES = ("tpe_joint", "tpe", "nsga2", "random")


@dataclass(frozen=True)
class Evidence:
    """One replay: median share of a grid's hypervolume per sampler at one budget.

    ``table`` says which energy figures the replay scored: ``modeled`` (deterministic), or
    ``estimated`` on a named CPU (one noisy measurement per variant, but this kind of machine).
    """

    space: str
    grid: int
    budget: int
    table: str
    medians: dict[str, float]

    @property
    def fraction(self) -> float:
        """The budget as a share of the grid."""
        return self.budget / self.grid


#: benchmarks/search_efficiency.py (figure 3), every sampler wrapped in DistinctProposals, 10
#: seeds: the digits and Fashion-MNIST grids of 2026-11-30 18:31 UTC (a Xeon with AMX and
#: native bf16, one measured thread), and the digits grid of 2026-11-22 (a Xeon without native
#: bf16), which predates tpe_joint and so is not compared while tpe_joint is a candidate.
EVIDENCE: tuple[Evidence, ...] = (
    Evidence(
        "digits",
        99,
        14,
        "modeled",
        {"nsga2": 0.866, "tpe": 0.925, "tpe_joint": 0.906, "random": 0.866},
    ),
    Evidence(
        "digits",
        99,
        29,
        "modeled",
        {"nsga2": 0.937, "tpe": 0.974, "tpe_joint": 0.974, "random": 0.959},
    ),
    Evidence(
        "digits",
        99,
        50,
        "modeled",
        {"nsga2": 0.975, "tpe": 0.983, "tpe_joint": 0.98, "random": 0.965},
    ),
    Evidence(
        "digits",
        99,
        14,
        "estimated, AMX",
        {"nsga2": 0.812, "tpe": 0.819, "tpe_joint": 0.822, "random": 0.812},
    ),
    Evidence(
        "digits",
        99,
        29,
        "estimated, AMX",
        {"nsga2": 0.897, "tpe": 0.932, "tpe_joint": 0.922, "random": 0.911},
    ),
    Evidence(
        "digits",
        99,
        50,
        "estimated, AMX",
        {"nsga2": 0.954, "tpe": 0.971, "tpe_joint": 0.93, "random": 0.952},
    ),
    Evidence(
        "fashion-mnist",
        99,
        14,
        "modeled",
        {"nsga2": 0.784, "tpe": 0.813, "tpe_joint": 0.806, "random": 0.784},
    ),
    Evidence(
        "fashion-mnist",
        99,
        29,
        "modeled",
        {"nsga2": 0.871, "tpe": 0.861, "tpe_joint": 0.982, "random": 0.893},
    ),
    Evidence(
        "fashion-mnist",
        99,
        50,
        "modeled",
        {"nsga2": 0.981, "tpe": 0.998, "tpe_joint": 0.998, "random": 0.952},
    ),
    Evidence(
        "fashion-mnist",
        99,
        14,
        "estimated, AMX",
        {"nsga2": 0.809, "tpe": 0.834, "tpe_joint": 0.81, "random": 0.809},
    ),
    Evidence(
        "fashion-mnist",
        99,
        29,
        "estimated, AMX",
        {"nsga2": 0.905, "tpe": 0.898, "tpe_joint": 0.888, "random": 0.912},
    ),
    Evidence(
        "fashion-mnist",
        99,
        50,
        "estimated, AMX",
        {"nsga2": 0.972, "tpe": 0.988, "tpe_joint": 0.957, "random": 0.957},
    ),
    Evidence(
        "digits", 99, 14, "estimated, no bf16", {"tpe": 0.867, "nsga2": 0.832, "random": 0.832}
    ),
    Evidence(
        "digits", 99, 29, "estimated, no bf16", {"tpe": 0.955, "nsga2": 0.920, "random": 0.911}
    ),
    Evidence(
        "digits", 99, 50, "estimated, no bf16", {"tpe": 0.970, "nsga2": 0.946, "random": 0.953}
    ),
)


@dataclass(frozen=True)
class SamplerChoice:
    """The Optuna sampler a study runs, and why (the report states both)."""

    name: str
    reason: str


def choose_sampler(
    recipe: Recipe,
    space: SearchSpace | None = None,
    *,
    evidence: tuple[Evidence, ...] = EVIDENCE,
) -> SamplerChoice:
    """The sampler a recipe gets, with the reason (see the module's docstring).

    Args:
        recipe: the recipe (``search.sampler`` and ``search.trials``).
        space: its search space (built from the recipe when not given).
        evidence: the replay results ``auto`` decides by.
    """
    name = recipe.search.sampler
    budget = recipe.search.trials
    if name != "auto":
        return SamplerChoice(name, "named in the recipe (search.sampler)")
    space = space or SearchSpace.from_recipe(recipe.compression, recipe.runtime)
    try:
        size = space.size()  # counted, never listed: a fine step makes billions of variants
    except RecipeError:
        size = None  # a continuous range: no finite grid
    if size is not None and size <= budget:
        return SamplerChoice(
            "grid", f"auto: the whole space ({size} variants) fits in the budget of {budget}"
        )
    fraction = budget / size if size else 0.0
    # The candidates some replay tried, compared on the tables that replayed them all (a
    # sampler missing from a table is not scored zero there, nor compared on fewer tables).
    candidates = [s for s in AUTO_CANDIDATES if any(s in e.medians for e in evidence)]
    nearest = _nearest(
        tuple(e for e in evidence if all(s in e.medians for s in candidates)), fraction
    )
    if not nearest:
        return SamplerChoice("tpe", "auto: no replay evidence recorded; TPE by default")
    scores = {s: sum(e.medians[s] for e in nearest) / len(nearest) for s in candidates}
    best = max(candidates, key=lambda s: scores[s])
    where = (
        f"{budget} of {size} variants, {100 * fraction:.0f}%"
        if size
        else f"{budget} variants of a space with a continuous range"
    )
    replays = "; ".join(f"{e.space} {e.budget} of {e.grid} ({e.table})" for e in nearest)
    ranked = ", ".join(
        f"{s} {100 * scores[s]:.1f}%" for s in sorted(candidates, key=lambda s: -scores[s])
    )
    return SamplerChoice(
        best,
        f"auto: {best} reached the largest median share of the exhaustive grid's hypervolume "
        f"in the replay benchmark, averaged over the replays nearest this budget ({where}): "
        f"{ranked} ({replays})",
    )


def _nearest(evidence: tuple[Evidence, ...], fraction: float) -> list[Evidence]:
    """Per replayed table, the replay whose budget share is nearest ``fraction`` (log scale)."""
    out = []
    for key in sorted({(e.space, e.table) for e in evidence}):
        rows = [e for e in evidence if (e.space, e.table) == key]
        floor = min(e.fraction for e in rows)
        target = math.log(max(fraction, floor / 10))
        out.append(min(rows, key=lambda e: (abs(math.log(e.fraction) - target), e.budget)))
    return out


def sampler_name(recipe: Recipe, space: SearchSpace | None = None) -> str:
    """The Optuna sampler a recipe gets (see :func:`choose_sampler` for the rule and why)."""
    return choose_sampler(recipe, space).name
