"""Recipes: the YAML that names a task, a compression space, energy settings and a search budget.

A recipe is data. It is read with ``yaml.safe_load`` semantics (``yaml.compose`` with the safe
loader, which also gives line numbers) and validated by pydantic models that forbid unknown keys.
A wrong recipe fails here, before any work starts, with one message naming the file, the line,
the field and the fix (:class:`~compresslab.errors.RecipeError`, exit code 2).

Parameter ranges in ``compression`` are written in one of three forms::

    ratio: 0.5                                 # fixed value
    ratio: {low: 0.1, high: 0.7, step: 0.1}    # numeric range (``log: true`` for log scale)
    importance: {choices: [l1, l2, fpgm]}      # categorical

Modules: :mod:`.schema` (the models, with one module per large section), :mod:`.source`
(reading the YAML), :mod:`.validate` (checking it against the models, error messages),
:mod:`.identity` (the recipe's hash and what decides its results). This package checks the
form; which methods and parameters exist is checked by :func:`compresslab.compress.check_space`
(called from :func:`compresslab.api.load_recipe`).
"""

from __future__ import annotations

from compresslab.recipe.identity import (
    RESULT_FIELDS,
    recipe_changes,
    recipe_hash,
    result_fields,
)
from compresslab.recipe.schema import (
    CarbonSpec,
    CheckSpec,
    ContentionSpec,
    EnergySpec,
    EstimateOptions,
    MethodSpec,
    NvmlOptions,
    ParamChoices,
    ParamRange,
    ParamSpec,
    RaplDomain,
    RaplOptions,
    Recipe,
    ReportSpec,
    RuntimeSpec,
    Scalar,
    SearchSpec,
    TaskSpec,
    Tolerance,
    rapl_domains_problem,
    storage_problem,
)
from compresslab.recipe.source import RecipeSource, read_source, source_from_text
from compresslab.recipe.validate import parse_recipe

__all__ = [
    "rapl_domains_problem",
    "RaplDomain",
    "NvmlOptions",
    "CarbonSpec",
    "CheckSpec",
    "ContentionSpec",
    "EnergySpec",
    "EstimateOptions",
    "MethodSpec",
    "ParamChoices",
    "ParamRange",
    "ParamSpec",
    "RESULT_FIELDS",
    "RaplOptions",
    "Recipe",
    "RecipeSource",
    "ReportSpec",
    "RuntimeSpec",
    "Scalar",
    "SearchSpec",
    "TaskSpec",
    "Tolerance",
    "parse_recipe",
    "read_source",
    "recipe_changes",
    "recipe_hash",
    "result_fields",
    "source_from_text",
    "storage_problem",
]
