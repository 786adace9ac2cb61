"""Writing every report file of a search, whole or not at all (see the package)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from compresslab.fsio import atomic_write
from compresslab.records import SearchResult
from compresslab.report.blocks import to_html, to_markdown
from compresslab.report.document import build_document
from compresslab.report.plot import hypervolume_plot, parallel_plot, pareto_html, pareto_plot
from compresslab.report.table import trials_frame

#: plotly's script, written once beside the interactive plots that load it.
PLOTLY_JS = "plotly.min.js"


def render_markdown(result: SearchResult) -> str:
    """The text of ``report.md``."""
    return to_markdown(build_document(result))


def write_report(result: SearchResult, out_dir: Path) -> dict[str, Path]:
    """Write every report file into ``out_dir`` and return their paths by name.

    The files are written as a whole or not at all: each is made in a staging folder first,
    and only once all of them exist are they moved into place. A failure on the way (a full
    disk, say) leaves the previous report as it was.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".report-staging-", dir=out_dir))
    try:
        names = _write_all(result, staging, shared_js=out_dir / PLOTLY_JS)
        for name in names:
            os.replace(staging / name, out_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {name: out_dir / name for name in names}


def _write_all(result: SearchResult, folder: Path, *, shared_js: Path) -> list[str]:
    df = trials_frame(result)
    doc = build_document(result)
    writers: dict[str, Callable[[Path], object]] = {
        "trials.csv": lambda p: df.to_csv(p, index=False),
        "trials.parquet": lambda p: df.astype({"error": "string"}).to_parquet(p),
        "pareto.png": lambda p: pareto_plot(result, p),
        "pareto.html": lambda p: pareto_html(result, p, plotly_js=PLOTLY_JS),
        "hypervolume.png": lambda p: hypervolume_plot(result, p),
        "parallel.png": lambda p: parallel_plot(result, p),
        "report.md": lambda p: p.write_text(to_markdown(doc), encoding="utf-8"),
    }
    for name, write in writers.items():
        atomic_write(folder / name, write, fsync=False)
    if not _current_plotly_js(shared_js):
        atomic_write(folder / PLOTLY_JS, _write_plotly_js, fsync=False)
    # Last: it inlines the pictures written above.
    html = to_html(doc, base_dir=folder)
    atomic_write(folder / "report.html", lambda p: p.write_text(html, encoding="utf-8"))
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def _write_plotly_js(path: Path) -> None:
    from plotly.offline import get_plotlyjs

    path.write_text(get_plotlyjs(), encoding="utf-8")


def _current_plotly_js(path: Path) -> bool:
    """Whether ``path`` holds the installed plotly's script already (written once per folder)."""
    from plotly.offline import get_plotlyjs_version

    try:
        with open(path, encoding="utf-8") as fh:
            head = fh.read(400)
    except OSError:
        return False
    return f"plotly.js v{get_plotlyjs_version()}" in head
