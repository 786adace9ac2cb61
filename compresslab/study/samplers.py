"""Building the seeded Optuna sampler a recipe gets, and what makes its budget too small.

Which sampler a recipe gets, and why, is :mod:`.sampler_choice` (``auto`` decides by the replay
benchmark's evidence); proposals of variants not yet evaluated are :mod:`.distinct`. Both are
re-exported here.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import socket
import warnings
from typing import Any

from compresslab.errors import RecipeError
from compresslab.recipe import Recipe
from compresslab.study._optuna import load_optuna
from compresslab.study.distinct import DistinctProposals
from compresslab.study.sampler_choice import (
    AUTO_CANDIDATES,
    EVIDENCE,
    Evidence,
    SamplerChoice,
    choose_sampler,
    sampler_name,
)
from compresslab.study.space import SearchSpace, categorical_choices

__all__ = [
    "AUTO_CANDIDATES",
    "EVIDENCE",
    "TPE_JOINT_GOOD_SHARE",
    "DistinctProposals",
    "Evidence",
    "SamplerChoice",
    "budget_warnings",
    "choose_sampler",
    "make_optuna_sampler",
    "nsga2_population",
    "sampler_name",
    "tpe_joint_gamma",
]

log = logging.getLogger(__name__)

#: ``tpe_joint``'s good set: this share of the trials (Optuna's default is 10%, capped at 25).
TPE_JOINT_GOOD_SHARE = 0.25


def tpe_joint_gamma(n: int) -> int:
    """How many of ``n`` trials ``tpe_joint`` models as good: a quarter, rounded up."""
    return math.ceil(TPE_JOINT_GOOD_SHARE * n)


def nsga2_population(trials: int) -> int:
    """NSGA-II's population for a budget: a third of it, between 8 and 50."""
    # Optuna's default population (50) exceeds most budgets here, which would leave NSGA-II
    # doing random search only; a third of the budget gives it generations.
    return max(8, min(50, trials // 3))


#: Variants TPE and GP draw at random before their model is used (Optuna's defaults).
_STARTUP = {"tpe": 10, "tpe_joint": 10, "gp": 10}


def budget_warnings(recipe: Recipe, space: SearchSpace, sampler: str, target: int) -> list[str]:
    """What makes a budget of ``target`` variants too small for this space and sampler."""
    try:
        size = space.size()
    except RecipeError:
        size = None  # continuous: endless
    if size is not None and size <= target:
        return []  # every variant fits
    how = "raise the budget (--trials, trials=, or search.trials)"
    if target <= 1:
        return [f"a budget of {target} variant evaluates only the uncompressed baseline: {how}"]
    out = []
    choices = categorical_choices(space)
    if target < 2 * choices:
        out.append(
            f"a budget of {target} variants is small for this space "
            f"({'endless' if size is None else size} variants, {choices} categorical choices "
            f"to try): the sampler cannot try each choice about twice; {how} to at least "
            f"{2 * choices}, or narrow the space"
        )
    if sampler == "nsga2" and target < 2 * (pop := nsga2_population(recipe.search.trials)):
        out.append(
            f"NSGA-II's first generation is {pop} random variants, so a budget of {target} ends "
            f"before it evolves: {how} to at least {2 * pop}, or use search.sampler: random"
        )
    if sampler in _STARTUP and target <= _STARTUP[sampler]:
        out.append(
            f"{sampler} draws its first {_STARTUP[sampler]} variants at random, so a budget of "
            f"{target} never uses its model: {how}, or use search.sampler: random"
        )
    return out


def make_optuna_sampler(
    recipe: Recipe,
    name: str,
    *,
    shared: bool = False,
    seed_offset: int = 0,
    space: SearchSpace | None = None,
) -> Any:
    """The seeded Optuna sampler ``name`` for a recipe.

    Args:
        recipe: the recipe (budget and seed).
        name: ``gp``, ``nsga2``, ``tpe``, ``random`` or ``grid`` (whose points are enqueued).
        shared: the study is shared by several workers (each mixes its identity into the seed).
        seed_offset: continues the seed of a resumed study (trials already run).
        space: the search space; when it is a finite grid, the sampler is wrapped so that it
            proposes variants not yet evaluated (:class:`DistinctProposals`).
    """
    sampler = _make(recipe, name, shared=shared, seed_offset=seed_offset)
    if space is None or name == "grid":
        return sampler
    try:
        grid = space.grid()
    except RecipeError:
        return sampler  # a continuous range: repeats are all but impossible
    if len(grid) > _MAX_DISTINCT_GRID:
        return sampler  # repeats are rare in so large a space, and checking each costs
    return DistinctProposals(sampler, grid, seed=recipe.search.seed + seed_offset)


#: The largest grid whose proposals :class:`DistinctProposals` checks.
_MAX_DISTINCT_GRID = 20_000


def _make(recipe: Recipe, name: str, *, shared: bool, seed_offset: int) -> Any:
    optuna = load_optuna()
    # numpy's generators take 32-bit seeds; a resumed study's offset must not overflow them.
    seed = (recipe.search.seed + 1_000_003 * seed_offset) % 2**32
    if shared:
        # Workers sharing a study with one seed would all propose the same variants in the
        # same order (duplicates, reuses); each mixes its identity in. A fleet's order of
        # trials is not reproducible anyway.
        worker = f"{seed}:{socket.gethostname()}:{os.getpid()}".encode()
        seed = int.from_bytes(hashlib.sha256(worker).digest()[:4], "big")
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if name == "nsga2":
        population = nsga2_population(recipe.search.trials)
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=population)
    if name == "tpe":
        # Optuna's defaults: independent TPE, 10 random start-up trials, a good set of 10%.
        return optuna.samplers.TPESampler(seed=seed)
    if name == "tpe_joint":
        # TPE that models the parameters jointly, per branch of the conditional space
        # (multivariate, group), with a good set of a quarter of the trials: feasibility
        # depends on ratio and recovery together, and a front of 5 to 8 variants needs more
        # than the 2 or 3 "good" trials Optuna's 10% leaves at a budget of 30. Replayed over
        # 40 seeds at 29 of 99 (benchmarks/sampler_configs.py, NOTES.md), it reached 95% of
        # the grid in more seeds than Optuna's defaults on all four tables.
        # multivariate and group are experimental in Optuna (load_optuna silences that);
        # ``gamma`` is deprecated since Optuna 4.9 and to be removed in 6.0: then tpe_joint
        # falls back to Optuna's good set, with a warning that the evidence was not that.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning, message=".*gamma.*")
            try:
                return optuna.samplers.TPESampler(
                    seed=seed, multivariate=True, group=True, gamma=tpe_joint_gamma
                )
            except TypeError:
                log.warning(
                    "this Optuna (%s) has no TPESampler(gamma=...): tpe_joint runs with "
                    "Optuna's own good set, not the quarter its replay evidence used",
                    optuna.__version__,
                )
                return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True)
    # random, and grid (whose points are enqueued; the random sampler is never consulted
    # until the grid is exhausted)
    return optuna.samplers.RandomSampler(seed=seed)
