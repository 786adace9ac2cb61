"""Reports under ``reports/<recipe>/``: ``trials.csv``, ``pareto.png``, ``report.md``.

Every file is written to a temporary name and renamed into place, so a kill never leaves a
half-written report.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from compresslab.report.markdown import frontier_table, render_markdown
from compresslab.report.plot import pareto_plot
from compresslab.report.table import frontier_frame, trials_frame
from compresslab.results import SearchResult

__all__ = ["frontier_frame", "frontier_table", "render_markdown", "trials_frame", "write_report"]


def _atomic(path: Path, write: object) -> Path:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(Path(tmp))  # type: ignore[operator]
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_report(result: SearchResult, out_dir: Path) -> dict[str, Path]:
    """Write the report files into ``out_dir`` and return their paths by name."""
    out_dir.mkdir(parents=True, exist_ok=True)
    df = trials_frame(result)
    text = render_markdown(result)
    return {
        "trials.csv": _atomic(out_dir / "trials.csv", lambda p: df.to_csv(p, index=False)),
        "pareto.png": _atomic(out_dir / "pareto.png", lambda p: pareto_plot(result, p)),
        "report.md": _atomic(out_dir / "report.md", lambda p: p.write_text(text, encoding="utf-8")),
    }
