"""Reports under ``reports/<recipe>/``.

``report.md`` and ``report.html`` (self-contained), ``trials.csv`` and ``trials.parquet``,
``pareto.png``, ``pareto.html`` (interactive) and ``hypervolume.png``. Every file is written to a
temporary name and renamed into place, so a kill never leaves a half-written report.
"""

from compresslab.report._write import PLOTLY_JS, render_markdown, write_report
from compresslab.report.cells import frontier_table
from compresslab.report.document import build_document
from compresslab.report.table import frontier_frame, trials_frame

__all__ = [
    "PLOTLY_JS",
    "build_document",
    "frontier_frame",
    "frontier_table",
    "render_markdown",
    "trials_frame",
    "write_report",
]
