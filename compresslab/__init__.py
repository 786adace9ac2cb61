"""compresslab: trade model accuracy against measured energy per inference.

The public API::

    import compresslab
    recipe = compresslab.load_recipe("recipes/digits.yaml")
    result = compresslab.search(recipe)
    result.frontier  # feasible Pareto-optimal variants, cheapest first

Importing the package is cheap: the public names are loaded on first use (PEP 562), so
``import compresslab`` and ``compresslab --version`` import neither torch, pandas nor optuna.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from compresslab._version import __version__
from compresslab.machine import prefer_passive_omp_wait

# Before anything imports torch: OpenMP threads that wait sleep instead of spinning.
prefer_passive_omp_wait()

if TYPE_CHECKING:
    from compresslab import lab
    from compresslab.api import (
        export_trial,
        load_recipe,
        measure_model,
        measure_recipe,
        rebuild_report,
        search,
    )
    from compresslab.errors import CompressLabError, RecipeError
    from compresslab.lab import Study
    from compresslab.protocol.block import BlockMeasurement, measure

# Public name -> the module that defines it.
_PUBLIC = {
    "BlockMeasurement": "compresslab.protocol.block",
    "export_trial": "compresslab.api",
    "load_recipe": "compresslab.api",
    "measure": "compresslab.protocol.block",
    "measure_model": "compresslab.api",
    "measure_recipe": "compresslab.api",
    "rebuild_report": "compresslab.api",
    "search": "compresslab.api",
    "CompressLabError": "compresslab.errors",
    "RecipeError": "compresslab.errors",
    "Study": "compresslab.lab",
}

__all__ = [
    "BlockMeasurement",
    "CompressLabError",
    "RecipeError",
    "Study",
    "__version__",
    "export_trial",
    "lab",
    "load_recipe",
    "measure",
    "measure_model",
    "measure_recipe",
    "rebuild_report",
    "search",
]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    if name == "lab":
        return importlib.import_module("compresslab.lab")
    raise AttributeError(f"module 'compresslab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
