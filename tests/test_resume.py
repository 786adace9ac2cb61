"""Nothing lost: a killed search resumes, a failing variant stays one failed trial, and a
report is never half written.

- A search killed with SIGKILL in the middle of a trial, then run again with the same command,
  keeps every completed trial as it was (same numbers, same values), marks the interrupted
  trial FAIL with the reason "interrupted", retries its variant, and reaches the requested
  number of distinct variants.
- A variant that raises, runs out of memory or gives NaN is a failed trial with its reason in
  ``report.md``; the search goes on. When every trial fails, the command says why (exit 1).
- Report files are replaced whole (written to a temporary file, then renamed).
"""

from __future__ import annotations

import csv
import os
import signal
import textwrap
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
import yaml
from tests_support import FAST_ENERGY, finish, small, start_cli, wait_for_running_trial
from torch import nn

from compresslab.api import load_recipe, search
from compresslab.study import attrs, counts_towards_budget, make_storage

pytestmark = pytest.mark.slow

TIMEOUT_S = 300


def leftovers(folder: Path) -> list[str]:
    """Temporary files of the atomic writes (``.<name>.<random><suffix>``)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_a_killed_search_resumes_without_losing_or_repeating_a_trial(
    tmp_path: Path, digits_task: Any
) -> None:
    target = 3
    # Every variant is measured (no screening) for at least 1 s: a kill lands inside a trial.
    energy = {**FAST_ENERGY, "window_s": 0.5, "min_windows": 2, "max_windows": 2}
    recipe = tmp_path / "small.yaml"
    recipe.write_text(
        yaml.safe_dump(
            small(
                tmp_path,
                energy=energy,
                search={"trials": target, "sampler": "random", "seed": 1, "screen_examples": 0},
            )
        )
    )
    out = tmp_path / "reports" / "small"
    storage = f"sqlite:///{out / 'study.db'}"

    proc = start_cli(["search", str(recipe)], cwd=tmp_path)
    try:
        victim = wait_for_running_trial(proc, storage)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        finish(proc)
    assert proc.returncode == -signal.SIGKILL

    study = optuna.load_study(study_name="small", storage=make_storage(storage))
    before = {t.number: t for t in study.get_trials() if t.state.name == "COMPLETE"}
    [killed] = [t for t in study.get_trials() if t.state.name == "RUNNING"]
    assert killed.number == victim.number and killed.params

    rc, stdout, stderr = finish(start_cli(["search", str(recipe)], cwd=tmp_path))
    assert rc == 0, stderr
    assert "Traceback" not in stderr
    assert "interrupted" in stderr  # the warning that the trial is retried

    trials = optuna.load_study(study_name="small", storage=make_storage(storage)).get_trials()
    by_number = {t.number: t for t in trials}
    # Nothing completed before was lost, changed or measured again.
    for number, t in before.items():
        after = by_number[number]
        assert after.state.name == "COMPLETE"
        assert after.values == t.values
        assert attrs.read(after).evaluation == attrs.read(t).evaluation
    evaluated = [t for t in trials if counts_towards_budget(t)]
    assert len(evaluated) == target
    labels = [t.user_attrs["variant"] for t in evaluated]
    assert len(set(labels)) == len(labels), labels
    # The interrupted trial failed with its reason, and its variant was retried.
    interrupted = by_number[killed.number]
    assert interrupted.state.name == "FAIL"
    assert "interrupted" in interrupted.user_attrs["error"]
    [retry] = [t for t in trials if t.user_attrs.get("retry_of") == killed.number]
    assert retry.params == killed.params
    assert retry.number > killed.number and retry.state.name == "COMPLETE"
    assert not [t.number for t in trials if t.state.name in ("RUNNING", "WAITING")]

    # The report of the resumed search: one row per stored trial, the interruption in it.
    with open(out / "trials.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(int(r["trial"]) for r in rows) == sorted(by_number)
    report = (out / "report.md").read_text()
    assert f"trial {killed.number} (" in report and "interrupted" in report
    assert leftovers(out) == []


def test_raising_oom_and_nan_variants_are_failed_trials_with_their_reasons(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, digits_task: Any
) -> None:
    import compresslab.bench._variant as search_module  # where variants are built

    real_build = search_module.build_variant

    class NaNOutputs(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x) * float("nan")

    def build(base: nn.Module, spec: Any, ctx: Any, **kw: Any) -> nn.Module:
        steps = {s.method: s.params for s in spec.steps}
        if "prune_channels" in steps:
            if steps["prune_channels"]["ratio"] == 0.2:
                raise MemoryError("simulated: cannot allocate 9 GiB")
            raise RuntimeError("simulated kernel bug")
        model = real_build(base, spec, ctx, **kw)
        return NaNOutputs(model) if "dynamic_int8" in steps else model

    monkeypatch.setattr(search_module, "build_variant", build)
    recipe = load_recipe(
        small(
            tmp_path,
            compression=[
                {"method": "prune_channels", "params": {"ratio": {"choices": [0.2, 0.4]}}},
                {"method": "dynamic_int8"},
            ],
            search={"trials": 2, "sampler": "random", "seed": 3},
        )
    )
    # Only the baseline can succeed: the search tries until its attempts run out, then ends.
    result = search(recipe)
    assert result.baseline is not None
    assert [t.number for t in result.trials if t.evaluated] == [result.baseline.number]
    reasons = {t.error for t in result.failed}
    assert "MemoryError: simulated: cannot allocate 9 GiB" in reasons
    assert "RuntimeError: simulated kernel bug" in reasons
    assert any(r and "NaN" in r for r in reasons), reasons
    report = (recipe.output_dir() / "report.md").read_text()
    for failed in result.failed:
        assert f"trial {failed.number} (" in report and str(failed.error) in report
    others = [t for t in result.trials if not t.evaluated and t.reused_from is None]
    assert others and all(t.state == "FAIL" for t in others)


CRASHING_TASK = """
import torch
from torch import nn

from compresslab.tasks import Task


class Net(nn.Module):
    def __init__(self, mode):
        super().__init__()
        self.mode = mode
        self.lin = nn.Linear(8, 3)

    def forward(self, x):
        # "always": the model itself is broken; "energy": only the measured batch (7 rows)
        # crashes, so every trial (the baseline too) fails at measurement.
        if self.mode == "always" or x.shape[0] == 7:
            raise RuntimeError("simulated kernel crash")
        return self.lin(x)


def build(options):
    x = torch.randn(60, 8, generator=torch.Generator().manual_seed(0))
    return Task(name="crashy", model=Net(options["mode"]), eval_inputs=x,
                eval_labels=(x[:, 0] > 0).long(), num_classes=3)
"""


def test_when_every_trial_fails_the_command_says_why(tmp_path: Path) -> None:
    (tmp_path / "crashy_task.py").write_text(textwrap.dedent(CRASHING_TASK))
    procs = {}
    for mode in ("always", "energy"):
        recipe = {
            "name": f"crashy-{mode}",
            "task": {"entrypoint": "crashy_task:build", "options": {"mode": mode}},
            "compression": [{"method": "dynamic_int8"}],
            "energy": {**FAST_ENERGY, "batch_size": 7},
            # No screening: an int8 variant whose accuracy on these 60 examples moved by one
            # answer (1.7 points) would be screened out, evaluated, and the search succeed.
            "search": {"trials": 1, "sampler": "random", "screen_examples": 0},
            "output": str(tmp_path / "reports"),
        }
        path = tmp_path / f"{mode}.yaml"
        path.write_text(yaml.safe_dump(recipe))
        # cwd holds crashy_task.py: `python -m` puts it on sys.path.
        procs[mode] = start_cli(["search", str(path)], cwd=tmp_path)
    results = {mode: finish(p) for mode, p in procs.items()}

    # The model itself is broken: said before any trial, without a traceback.
    rc, _, stderr = results["always"]
    assert rc == 1
    assert "Traceback" not in stderr
    assert "the task's own (uncompressed) model fails" in stderr
    assert "simulated kernel crash" in stderr

    # Every trial failed at measurement: the reason, and where each trial's reason is.
    rc, _, stderr = results["energy"]
    report = tmp_path / "reports" / "crashy-energy" / "report.md"
    assert rc == 1
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: every trial failed"), stderr
    assert "RuntimeError: simulated kernel crash" in last
    assert "baseline failed too" in last and str(report) in last
    assert "simulated kernel crash" in report.read_text()


def test_reports_are_replaced_whole_and_leave_no_temporary_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, digits_task: Any
) -> None:
    import compresslab.report._write as report_module

    recipe = load_recipe(small(tmp_path, search={"trials": 1, "sampler": "random"}))
    out = recipe.output_dir()
    out.mkdir(parents=True)
    stale = "stale line that must not survive\n" * 5000
    for name in ("trials.csv", "report.md"):
        (out / name).write_text(stale)
    (out / "pareto.png").write_bytes(b"old picture")

    result = search(recipe)
    rows = (out / "trials.csv").read_text().splitlines()
    assert rows[0].startswith("trial,") and len(rows) == 1 + len(result.trials)
    assert "stale line" not in (out / "report.md").read_text()
    assert (out / "pareto.png").read_bytes().startswith(b"\x89PNG")
    assert leftovers(out) == []

    # A writer that dies half-way leaves the previous file whole, and no temporary file.
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    def dies_half_way(result: Any, path: Path) -> None:
        path.write_bytes(b"half a pic")
        raise OSError("disk full")

    monkeypatch.setattr(report_module, "pareto_plot", dies_half_way)
    with pytest.raises(OSError, match="disk full"):
        report_module.write_report(result, out)
    assert (out / "pareto.png").read_bytes() == before["pareto.png"]
    assert leftovers(out) == []
