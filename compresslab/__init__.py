"""compresslab: trade model accuracy against measured energy per inference.

The public API::

    import compresslab
    recipe = compresslab.load_recipe("recipes/digits.yaml")
    result = compresslab.search(recipe)
    result.frontier  # feasible Pareto-optimal variants, cheapest first
"""

from __future__ import annotations

__version__ = "0.1.0"

from compresslab import lab

# Submodules whose names are also public functions: imported first, so that loading them later
# (inside the functions) cannot rebind `compresslab.search` from the function to the module.
import compresslab.search as _search_module  # noqa: F401  (isort: skip)
from compresslab.api import (
    BlockMeasurement,
    load_recipe,
    measure,
    measure_model,
    measure_recipe,
    rebuild_report,
    search,
)
from compresslab.errors import CompressLabError, RecipeError
from compresslab.lab import Study

__all__ = [
    "BlockMeasurement",
    "CompressLabError",
    "RecipeError",
    "Study",
    "__version__",
    "lab",
    "load_recipe",
    "measure",
    "measure_model",
    "measure_recipe",
    "rebuild_report",
    "search",
]
