from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "explore.ipynb"


def test_the_stored_notebook_has_no_outputs() -> None:
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code
    for cell in code:
        assert cell["outputs"] == [], cell["source"]
        assert cell["execution_count"] is None, cell["source"]
    assert "widgets" not in nb["metadata"]
    nbformat.validate(nbformat.reads(json.dumps(nb), as_version=4))


def _cell(nb: Any, needle: str) -> Any:
    (cell,) = [c for c in nb.cells if c.cell_type == "code" and needle in c.source]
    return cell


def _data(cell: Any, mime: str) -> list[str]:
    return [o["data"][mime] for o in cell.outputs if mime in o.get("data", {})]


@pytest.mark.slow
def test_the_notebook_runs_end_to_end(
    tmp_path: Path, digits_task: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The repository's layout (the notebook finds recipes/ above its folder); the kernel
    # inherits this process's environment, COMPRESSLAB_CACHE_DIR included, so the digits
    # model trained for this session is reused.
    (tmp_path / "recipes").mkdir()
    shutil.copy(NOTEBOOK.parents[1] / "recipes" / "digits.yaml", tmp_path / "recipes")
    (tmp_path / "examples").mkdir()
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend, as in Jupyter
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))  # the notebook's tempfile.mkdtemp()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path / "examples")}},
    )
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error

    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code)
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]

    search = _cell(nb, "compresslab.search(")
    assert not [o for o in search.outputs if o.get("name") == "stdout"], "library code printed"
    (bar,) = _data(search, "text/html")[:1]
    assert "<progress value='6' max='6'" in bar  # the progress bar's final state
    summary = _data(search, "text/html")[-1]
    assert "Study digits" in summary and "<table" in summary and "Frontier" in summary

    trials = _data(_cell(nb, "study.trials["), "text/html")
    assert trials and 'class="dataframe"' in trials[0] and "provenance" in trials[0]
    assert 'class="dataframe"' in _data(_cell(nb, "study.frontier"), "text/html")[0]

    (png,) = _data(_cell(nb, "study.plot()"), "image/png")
    assert base64.b64decode(png).startswith(b"\x89PNG")

    measured = _data(_cell(nb, "compresslab.measure("), "text/plain")[0]
    assert "'provenance'" in measured and "energy_j_per_inference" in measured
    block = _data(_cell(nb, "compresslab.measure_block("), "text/plain")[0]
    assert "estimated" in block  # RAPL and NVML are hidden from the kernel too: auto estimates
    assert "weights.safetensors" in _data(_cell(nb, "study.export("), "text/plain")[0]
    assert "report.html" in _data(_cell(nb, "compresslab.open("), "text/plain")[0]
    (out,) = (tmp_path / "tmp").glob("compresslab-*")
    assert (out / "digits" / "study.db").is_file()
    assert (out / "digits" / "best-variant" / "weights.safetensors").is_file()
