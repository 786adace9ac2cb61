"""Reports under ``reports/<recipe>/``.

``report.md`` and ``report.html`` (self-contained), ``trials.csv`` and ``trials.parquet``,
``pareto.png``, ``pareto.html`` (interactive) and ``hypervolume.png``. Every file is written to a
temporary name and renamed into place, so a kill never leaves a half-written report.
"""

from __future__ import annotations

from pathlib import Path

from compresslab.fsio import atomic_write
from compresslab.report.document import build_document, frontier_table, to_html, to_markdown
from compresslab.report.plot import hypervolume_plot, pareto_html, pareto_plot
from compresslab.report.table import frontier_frame, trials_frame
from compresslab.results import SearchResult

__all__ = [
    "build_document",
    "frontier_frame",
    "frontier_table",
    "render_markdown",
    "trials_frame",
    "write_report",
]


def render_markdown(result: SearchResult) -> str:
    """The text of ``report.md``."""
    return to_markdown(build_document(result))


def write_report(result: SearchResult, out_dir: Path) -> dict[str, Path]:
    """Write every report file into ``out_dir`` and return their paths by name."""
    out_dir.mkdir(parents=True, exist_ok=True)
    df = trials_frame(result)
    doc = build_document(result)
    paths = {
        "trials.csv": atomic_write(out_dir / "trials.csv", lambda p: df.to_csv(p, index=False)),
        "trials.parquet": atomic_write(
            out_dir / "trials.parquet", lambda p: df.astype({"error": "string"}).to_parquet(p)
        ),
        "pareto.png": atomic_write(out_dir / "pareto.png", lambda p: pareto_plot(result, p)),
        "pareto.html": atomic_write(out_dir / "pareto.html", lambda p: pareto_html(result, p)),
        "hypervolume.png": atomic_write(
            out_dir / "hypervolume.png", lambda p: hypervolume_plot(result, p)
        ),
        "report.md": atomic_write(
            out_dir / "report.md", lambda p: p.write_text(to_markdown(doc), encoding="utf-8")
        ),
    }
    # Last: it inlines the pictures written above.
    html = to_html(doc, base_dir=out_dir)
    paths["report.html"] = atomic_write(
        out_dir / "report.html", lambda p: p.write_text(html, encoding="utf-8")
    )
    return paths
