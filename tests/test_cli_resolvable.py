"""`compresslab search` and `check` say before any work whether the tolerance can be resolved.

A user's task of 64 examples (nothing trained): one accuracy point cannot be resolved there,
twenty can. ``search.evaluation.on_unresolvable: error`` makes the first an error (exit 2),
before any trial or measurement.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from tests_support import FAST_ENERGY, run_cli

from compresslab.study import make_storage

pytestmark = pytest.mark.slow

TASK = """\
import torch
from torch import nn

from compresslab.tasks import Task


def build(options):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 8, generator=gen)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    return Task(name="tabular", model=model.eval(), eval_inputs=x,
                eval_labels=(x[:, 0] > 0).long(), num_classes=3)
"""


def recipe(folder: Path, name: str, tolerance: float, on_unresolvable: str) -> Path:
    (folder / "tabular_task.py").write_text(TASK)
    data: dict[str, Any] = {
        "name": name,
        "task": {"entrypoint": "tabular_task:build"},
        "compression": [{"method": "bf16"}],
        "energy": {**FAST_ENERGY, "batch_size": 16},
        "search": {
            "trials": 1,
            "sampler": "random",
            "confirm_pairs": 0,
            "tolerance": {"absolute": tolerance},
            "evaluation": {"on_unresolvable": on_unresolvable},
        },
        "output": str(folder / "reports"),
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def trials_in(folder: Path, name: str) -> int:
    url = f"sqlite:///{folder / 'reports' / name / 'study.db'}"
    return len(optuna.load_study(study_name=name, storage=make_storage(url)).get_trials())


def test_an_unresolvable_tolerance_is_an_error_when_asked_and_nothing_runs(
    tmp_path: Path,
) -> None:
    strict = recipe(tmp_path, "strict", 0.01, "error")
    proc = run_cli("search", str(strict), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith(
        "error: tolerance 1 point absolute cannot be resolved on the evaluation pool of 64 examples"
    ), lines[0]
    for words in ("paired interval of ±", "needs", "give the task", "widen search.tolerance"):
        assert words in lines[0], (words, lines[0])
    assert lines[0].endswith("stopped before any trial or measurement")
    assert trials_in(tmp_path, "strict") == 0  # no trial in the study

    # The gate refuses too, before it measures anything (no baseline file is even needed).
    proc = run_cli("check", str(strict), "--reference", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert proc.returncode == 2
    assert "error: tolerance 1 point absolute cannot be resolved" in proc.stderr, proc.stderr


def test_search_warns_or_says_one_line_and_check_json_holds_it(tmp_path: Path) -> None:
    loose = recipe(tmp_path, "loose", 0.01, "warn")
    proc = run_cli("search", str(loose), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    said = [line for line in proc.stderr.splitlines() if "tolerance 1 point" in line]
    assert len(said) == 1 and said[0].startswith("warning: tolerance 1 point absolute cannot"), (
        proc.stderr
    )
    assert "(64 examples" not in said[0] and "pool of 64 examples" in said[0]
    assert "measured)" in said[0]  # the search measured the baseline first
    assert trials_in(tmp_path, "loose") == 1  # and went on

    wide = recipe(tmp_path, "wide", 0.3, "error")
    baseline = tmp_path / "wide.json"
    assert run_cli("baseline", str(wide), "--out", str(baseline), cwd=tmp_path).returncode == 0
    proc = run_cli("check", str(wide), "--baseline", str(baseline), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    info = [line for line in proc.stderr.splitlines() if line.startswith("info: tolerance")]
    assert len(info) == 1 and "30 points absolute is resolvable" in info[0], proc.stderr
    figures = json.loads(proc.stdout)["resolvability"]
    assert figures["pool"] == 64 and figures["resolvable"] is True
    assert figures["baseline_source"] == "baseline file" and figures["level"] == "info"
    assert 0 < figures["half_width"] < 0.3
    assert figures["message"] in info[0]
