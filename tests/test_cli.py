from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml
from tests_support import small


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "compresslab", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200"},
        timeout=600,
    )


def test_bad_recipe_exits_2_with_one_message_and_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntask: {name: digits}\ncompression: [{method: nope}]\n")
    proc = run_cli("search", str(bad))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert f"{bad}:3" in proc.stderr and "unknown method 'nope'" in proc.stderr
    assert not (tmp_path / "reports").exists()


def test_missing_recipe_and_bad_flags_exit_2(tmp_path: Path) -> None:
    assert run_cli("search", str(tmp_path / "missing.yaml")).returncode == 2
    proc = run_cli("search", "--trials", "zero", str(tmp_path / "x.yaml"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_samplers_json_lists_every_backend_with_a_reason(hidden_rapl: Path) -> None:
    proc = run_cli("samplers", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert set(rows) == {"rapl", "nvml", "estimate", "model"}
    # The command runs in a subprocess, where the host's RAPL and NVML are hidden too.
    assert rows["rapl"]["available"] is False and str(hidden_rapl) in rows["rapl"]["reason"]
    assert rows["nvml"]["available"] is False
    assert rows["nvml"]["reason"].startswith("NVML library not found")
    assert rows["model"]["provenance"] == "modeled" and rows["model"]["available"] is True
    assert rows["estimate"]["available"] is True
    assert rows["estimate"]["provenance"] == "estimated"
    assert all(r["reason"] for r in rows.values())


def test_search_command_prints_the_frontier_and_writes_the_report(tmp_path: Path) -> None:
    recipe = tmp_path / "small.yaml"
    recipe.write_text(yaml.safe_dump(small(tmp_path, search={"trials": 3, "sampler": "random"})))
    proc = run_cli("search", str(recipe), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Pareto frontier of small" in proc.stdout
    # At least one frontier row (which variants are on it depends on the measurement).
    assert "estimated" in proc.stdout
    counts = re.search(r"(\d+) variants measured, (\d+) screened out", proc.stdout)
    assert counts is not None and int(counts[1]) + int(counts[2]) == 3  # the budget, exactly
    report = tmp_path / "reports" / "small" / "report.md"
    assert report.is_file() and "## Pareto frontier" in report.read_text()
