"""Which Optuna sampler a recipe gets, and building it (seeded)."""

from __future__ import annotations

import hashlib
import os
import socket
from typing import Any

from compresslab.errors import RecipeError
from compresslab.recipe import Recipe
from compresslab.study._optuna import load_optuna
from compresslab.study.space import SearchSpace, categorical_choices


def sampler_name(recipe: Recipe, space: SearchSpace | None = None) -> str:
    """The Optuna sampler a recipe gets (``auto`` decides by the size of the space).

    ``auto`` is an exhaustive grid when the whole space fits in the budget, else NSGA-II.
    """
    name = recipe.search.sampler
    if name != "auto":
        return name
    space = space or SearchSpace.from_recipe(recipe.compression, recipe.runtime)
    try:
        size = space.size()  # counted, never listed: a fine step makes billions of variants
    except RecipeError:
        return "nsga2"  # a continuous range: no finite grid
    return "grid" if size <= recipe.search.trials else "nsga2"


def nsga2_population(trials: int) -> int:
    """NSGA-II's population for a budget: a third of it, between 8 and 50."""
    # Optuna's default population (50) exceeds most budgets here, which would leave NSGA-II
    # doing random search only; a third of the budget gives it generations.
    return max(8, min(50, trials // 3))


#: Variants TPE and GP draw at random before their model is used (Optuna's defaults).
_STARTUP = {"tpe": 10, "gp": 10}


def budget_warnings(recipe: Recipe, space: SearchSpace, sampler: str, target: int) -> list[str]:
    """What makes a budget of ``target`` variants too small for this space and sampler."""
    try:
        size = space.size()
    except RecipeError:
        size = None  # continuous: endless
    if size is not None and size <= target:
        return []  # every variant fits
    how = "raise --trials (or search.trials)"
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
        return optuna.samplers.TPESampler(seed=seed)
    # random, and grid (whose points are enqueued; the random sampler is never consulted
    # until the grid is exhausted)
    return optuna.samplers.RandomSampler(seed=seed)
