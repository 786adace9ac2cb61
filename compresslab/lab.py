"""The notebook module of earlier releases: an alias of :mod:`compresslab`'s public names.

``from compresslab import lab; lab.search(...)`` still works and returns the same
:class:`~compresslab.Study` as ``compresslab.search(...)``: every name here *is* the public
one (new code imports them from ``compresslab``). ``lab.compare`` now returns a
:class:`~compresslab.report.compare.Comparison`; its ``.frame()`` is the DataFrame it returned.
"""

from __future__ import annotations

from compresslab._front import Study, compare, load_recipe, measure, open, rebuild_report, search

__all__ = ["Study", "compare", "load_recipe", "measure", "open", "rebuild_report", "search"]
