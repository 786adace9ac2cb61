"""Which Optuna sampler a recipe gets (and why), and building it (seeded).

``auto`` decides by evidence. When the whole space fits in the budget it is the exhaustive
grid: every variant once. Otherwise it is the sampler that the replay benchmark
(``benchmarks/search_efficiency.py``, figure 3) found best at the nearest budget, as a share of
the space: every sampler proposes variants of a replayed grid whose every variant was built
and measured once, and is scored by the median share of the full grid's hypervolume it
reaches (10 seeds, the deterministic modeled table). :data:`EVIDENCE` holds those medians;
rerun the benchmark and update it when the space, the samplers or Optuna change.

On the evidence so far TPE is best at every replayed budget, on both replayed spaces: NSGA-II
spends its first generation (a third of the budget) on random draws and has about two guided
generations left at 30 trials; TPE starts modelling after 10. No space with more than 99
variants, nor a budget above 50, has been replayed: there the nearest evidence decides, and
the stated reason says how far it is. MiniLM's space is not replayed: building and measuring
its 111 variants takes hours on the 2-core development VM.
"""

from __future__ import annotations

import hashlib
import math
import os
import socket
from dataclasses import dataclass
from typing import Any

from compresslab.errors import RecipeError
from compresslab.recipe import Recipe
from compresslab.study._optuna import load_optuna
from compresslab.study.space import SearchSpace

#: Samplers that ``auto`` may pick from the evidence.
AUTO_CANDIDATES = ("tpe", "nsga2", "random")


@dataclass(frozen=True)
class Evidence:
    """One replay: median share of a grid's hypervolume per sampler at one budget."""

    space: str
    grid: int
    budget: int
    medians: dict[str, float]

    @property
    def fraction(self) -> float:
        """The budget as a share of the grid."""
        return self.budget / self.grid


#: benchmarks/search_efficiency.py, modeled tables, 10 seeds (benchmarks/RESULTS.md, fig. 3).
EVIDENCE: tuple[Evidence, ...] = (
    Evidence("digits", 99, 14, {"tpe": 0.955, "random": 0.879, "nsga2": 0.862}),
    Evidence("digits", 99, 29, {"tpe": 0.974, "random": 0.959, "nsga2": 0.929}),
    Evidence("digits", 99, 50, {"tpe": 0.977, "random": 0.974, "nsga2": 0.958}),
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
        size: int | None = len(space.grid())
    except RecipeError:
        size = None  # a continuous range: no finite grid
    if size is not None and size <= budget:
        return SamplerChoice(
            "grid", f"auto: the whole space ({size} variants) fits in the budget of {budget}"
        )
    fraction = budget / size if size else 0.0
    nearest = _nearest(evidence, fraction)
    if not nearest:
        return SamplerChoice("tpe", "auto: no replay evidence recorded; TPE by default")
    scores = {
        s: sum(e.medians.get(s, 0.0) for e in nearest) / len(nearest) for s in AUTO_CANDIDATES
    }
    best = max(AUTO_CANDIDATES, key=lambda s: scores[s])
    where = (
        f"{budget} of {size} variants, {100 * fraction:.0f}%"
        if size
        else (f"{budget} variants of a space with a continuous range")
    )
    shown = "; ".join(
        f"{e.space} grid, {e.budget} of {e.grid}: "
        + ", ".join(
            f"{s} {100 * v:.1f}%" for s, v in sorted(e.medians.items(), key=lambda kv: -kv[1])
        )
        for e in nearest
    )
    return SamplerChoice(
        best,
        f"auto: {best} reached the largest median share of the exhaustive grid's hypervolume "
        f"in the replay benchmark at the budget share nearest this one ({where}): {shown}",
    )


def _nearest(evidence: tuple[Evidence, ...], fraction: float) -> list[Evidence]:
    """Per replayed space, the replay whose budget share is nearest ``fraction`` (log scale)."""
    out = []
    for space in sorted({e.space for e in evidence}):
        rows = [e for e in evidence if e.space == space]
        floor = min(e.fraction for e in rows)
        target = math.log(max(fraction, floor / 10))
        out.append(min(rows, key=lambda e: (abs(math.log(e.fraction) - target), e.budget)))
    return out


def sampler_name(recipe: Recipe, space: SearchSpace | None = None) -> str:
    """The Optuna sampler a recipe gets (see :func:`choose_sampler` for the rule and why)."""
    return choose_sampler(recipe, space).name


def make_optuna_sampler(
    recipe: Recipe, name: str, *, shared: bool = False, seed_offset: int = 0
) -> Any:
    """The seeded Optuna sampler ``name`` for a recipe.

    Args:
        recipe: the recipe (budget and seed).
        name: ``gp``, ``nsga2``, ``tpe``, ``random`` or ``grid`` (whose points are enqueued).
        shared: the study is shared by several workers (each mixes its identity into the seed).
        seed_offset: continues the seed of a resumed study (trials already run).
    """
    optuna = load_optuna()
    seed = recipe.search.seed + 1_000_003 * seed_offset
    if shared:
        # Workers sharing a study with one seed would all propose the same variants in the
        # same order (duplicates, reuses); each mixes its identity in. A fleet's order of
        # trials is not reproducible anyway.
        worker = f"{seed}:{socket.gethostname()}:{os.getpid()}".encode()
        seed = int.from_bytes(hashlib.sha256(worker).digest()[:4], "big")
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if name == "nsga2":
        # Optuna's default population (50) exceeds most budgets here, which would leave
        # NSGA-II doing random search only; a third of the budget gives it generations.
        population = max(8, min(50, recipe.search.trials // 3))
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=population)
    if name == "tpe":
        # Optuna's defaults (independent TPE, 10 random start-up trials): in the replay
        # benchmark the multivariate and shorter start-up variants did no better at 29 trials
        # and worse at 14 (benchmarks/RESULTS.md, figure 3).
        return optuna.samplers.TPESampler(seed=seed)
    # random, and grid (whose points are enqueued; the random sampler is never consulted
    # until the grid is exhausted)
    return optuna.samplers.RandomSampler(seed=seed)
