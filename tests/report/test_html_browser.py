"""The HTML report in a real browser: headless Chromium loads it and sees every section.

Skipped where Chromium is not installed (`apt-get install chromium`); see README.md,
'The report', for the same check by hand.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from tests_support import sample_result

from compresslab.report import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_report_html_renders_in_headless_chromium(tmp_path: Path) -> None:
    paths = write_report(sample_result(), tmp_path / "out")
    assert CHROMIUM is not None
    proc = subprocess.run(
        [
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            paths["report.html"].as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    for section in ("Baseline", "Pareto frontier", "Projections", "What the search itself cost"):
        assert f"<h2>{section}" in dom, section
    assert dom.count("<img") >= 2
    assert "Uncaught" not in proc.stderr
