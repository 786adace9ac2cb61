"""compresslab: trade model accuracy against measured energy per inference.

The public API::

    import compresslab
    recipe = compresslab.load_recipe("recipes/digits.yaml")
    result = compresslab.search(recipe)
    result.frontier  # feasible Pareto-optimal variants, cheapest first
"""

from __future__ import annotations

__version__ = "0.1.0"

from compresslab.api import (
    BlockMeasurement,
    load_recipe,
    measure,
    measure_model,
    measure_recipe,
    report,
    search,
)
from compresslab.errors import CompressLabError, RecipeError

__all__ = [
    "BlockMeasurement",
    "CompressLabError",
    "RecipeError",
    "__version__",
    "load_recipe",
    "measure",
    "measure_model",
    "measure_recipe",
    "report",
    "search",
]
