"""What the public names of :mod:`compresslab` do (the package re-exports them, lazily).

- :mod:`._inputs`: a recipe in any form (path, mapping, Recipe) read and checked; budgets,
  storages and study locations checked; a bad one is an ``InvalidArgumentError``;
- :mod:`._study`: the :class:`Study` type (:mod:`._summary`: how it shows itself);
- :mod:`._studies`: search, open, rebuild a report, compare: each returns a Study (or a
  Comparison), and the command line's variants that return the plain ``SearchResult``;
- :mod:`._measure`: the one measurement function, returning a ``Measurement``.
"""

from compresslab._front._inputs import load_recipe
from compresslab._front._measure import measure
from compresslab._front._studies import (
    compare,
    open,
    rebuild_report,
    report_result,
    search,
    search_result,
)
from compresslab._front._study import Study

__all__ = [
    "Study",
    "compare",
    "load_recipe",
    "measure",
    "open",
    "rebuild_report",
    "report_result",
    "search",
    "search_result",
]
