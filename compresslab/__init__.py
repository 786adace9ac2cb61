"""compresslab: trade model accuracy against measured energy per inference.

The public API (docs/api.md)::

    import compresslab
    study = compresslab.search("recipes/digits.yaml", trials=8)   # a Study
    study.frontier        # feasible Pareto-optimal variants, cheapest first (pandas)
    m = compresslab.measure(model, batch)                           # a Measurement

Every function that takes a recipe takes a path to its YAML, a mapping or a ``Recipe``; every
one that runs or opens a study returns a :class:`Study`; a bad argument raises an
:class:`InvalidArgumentError` (a ``ValueError``), all errors derive from
:class:`CompressLabError`. Importing the package is cheap: the public names are loaded on
first use (PEP 562), so ``import compresslab`` and ``compresslab --version`` import neither
torch, pandas nor optuna.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from compresslab._version import __version__
from compresslab.machine import prefer_passive_omp_wait

# Before anything imports torch: OpenMP threads that wait sleep instead of spinning.
prefer_passive_omp_wait()

if TYPE_CHECKING:
    from compresslab._front import (
        Study,
        compare,
        load_recipe,
        measure,
        open,
        rebuild_report,
        search,
    )
    from compresslab.api import energy_gate, export_trial, update_baseline
    from compresslab.errors import CompressLabError, InvalidArgumentError, RecipeError
    from compresslab.protocol.block import BlockMeasurement
    from compresslab.protocol.block import measure as measure_block
    from compresslab.records import Measurement

# Public name -> (the module that defines it, its name there).
_PUBLIC = {
    "BlockMeasurement": ("compresslab.protocol.block", "BlockMeasurement"),
    "CompressLabError": ("compresslab.errors", "CompressLabError"),
    "InvalidArgumentError": ("compresslab.errors", "InvalidArgumentError"),
    "Measurement": ("compresslab.records", "Measurement"),
    "RecipeError": ("compresslab.errors", "RecipeError"),
    "Study": ("compresslab._front", "Study"),
    "compare": ("compresslab._front", "compare"),
    "energy_gate": ("compresslab.api", "energy_gate"),
    "export_trial": ("compresslab.api", "export_trial"),
    "update_baseline": ("compresslab.api", "update_baseline"),
    "load_recipe": ("compresslab._front", "load_recipe"),
    "measure": ("compresslab._front", "measure"),
    "measure_block": ("compresslab.protocol.block", "measure"),
    "open": ("compresslab._front", "open"),
    "rebuild_report": ("compresslab._front", "rebuild_report"),
    "search": ("compresslab._front", "search"),
}

#: Deprecated names, still answered (with a DeprecationWarning when called).
_DEPRECATED = {
    "measure_model": ("compresslab.api", "measure_model"),
    "measure_recipe": ("compresslab.api", "measure_recipe"),
}

__all__ = [
    "BlockMeasurement",
    "CompressLabError",
    "InvalidArgumentError",
    "Measurement",
    "RecipeError",
    "Study",
    "__version__",
    "compare",
    "energy_gate",
    "export_trial",
    "update_baseline",
    "load_recipe",
    "measure",
    "measure_block",
    "open",
    "rebuild_report",
    "search",
]


def __getattr__(name: str) -> Any:
    where = _PUBLIC.get(name) or _DEPRECATED.get(name)
    if where is not None:
        value = getattr(importlib.import_module(where[0]), where[1])
        globals()[name] = value  # later lookups skip this function
        return value
    if name == "lab":
        return importlib.import_module("compresslab.lab")
    raise AttributeError(f"module 'compresslab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
