"""Which Optuna sampler a recipe gets, and building it (seeded)."""

from __future__ import annotations

import hashlib
import os
import socket
from typing import Any

from compresslab.errors import RecipeError
from compresslab.recipe import Recipe
from compresslab.study._optuna import load_optuna
from compresslab.study.space import SearchSpace


def sampler_name(recipe: Recipe, space: SearchSpace | None = None) -> str:
    """The Optuna sampler a recipe gets (``auto`` decides by the size of the space).

    ``auto`` is an exhaustive grid when the whole space fits in the budget, else NSGA-II.
    """
    name = recipe.search.sampler
    if name != "auto":
        return name
    space = space or SearchSpace.from_recipe(recipe.compression, recipe.runtime)
    try:
        size = len(space.grid())
    except RecipeError:
        return "nsga2"  # a continuous range: no finite grid
    return "grid" if size <= recipe.search.trials else "nsga2"


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
        return optuna.samplers.TPESampler(seed=seed)
    # random, and grid (whose points are enqueued; the random sampler is never consulted
    # until the grid is exhausted)
    return optuna.samplers.RandomSampler(seed=seed)
