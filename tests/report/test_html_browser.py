"""The HTML report in a real browser: headless Chromium loads it and sees every section.

Skipped where Chromium is not installed (`apt-get install chromium`), except in CI
(``CI=true``), where a missing Chromium fails the test; see README.md, 'The report', for the
same check by hand.
"""

from __future__ import annotations

import os
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


INSTALL = "apt-get install chromium"


def require_chromium(found: str | None = CHROMIUM) -> str:
    """The Chromium binary; without one, skip, or fail when ``CI=true`` (CI must run this)."""
    if found is not None:
        return found
    message = f"chromium is not installed: install it with `{INSTALL}`"
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (CI=true: this test must run)")
    pytest.skip(message)


def test_missing_chromium_skips_locally_but_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=f"`{INSTALL}`"):
        require_chromium(None)
    for local in ("false", ""):
        monkeypatch.setenv("CI", local)
        with pytest.raises(pytest.skip.Exception, match=f"`{INSTALL}`"):
            require_chromium(None)
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match=f"`{INSTALL}`"):
        require_chromium(None)
    assert require_chromium("/opt/chromium") == "/opt/chromium"


@pytest.mark.slow  # starts a browser
def test_report_html_renders_in_headless_chromium(tmp_path: Path) -> None:
    chromium = require_chromium()
    paths = write_report(sample_result(), tmp_path / "out")
    proc = subprocess.run(
        [
            chromium,
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
