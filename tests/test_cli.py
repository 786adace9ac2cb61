from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
from pathlib import Path

import pytest
import yaml
from tests_support import FAST_ENERGY, finish, run_cli, small, start_cli


@pytest.mark.slow
def test_bad_recipe_exits_2_with_one_message_and_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntask: {name: digits}\ncompression: [{method: nope}]\n")
    proc = run_cli("search", str(bad))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert f"{bad}:3" in proc.stderr and "unknown method 'nope'" in proc.stderr
    assert not (tmp_path / "reports").exists()


@pytest.mark.slow
def test_missing_recipe_and_bad_flags_exit_2(tmp_path: Path) -> None:
    assert run_cli("search", str(tmp_path / "missing.yaml")).returncode == 2
    proc = run_cli("search", "--trials", "zero", str(tmp_path / "x.yaml"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_samplers_json_lists_every_backend_with_a_reason(hidden_rapl: Path) -> None:
    proc = run_cli("samplers", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)["samplers"]}
    assert set(rows) == {"rapl", "nvml", "estimate", "model"}
    # The command runs in a subprocess, where the host's RAPL and NVML are hidden too.
    assert rows["rapl"]["available"] is False and str(hidden_rapl) in rows["rapl"]["reason"]
    assert rows["nvml"]["available"] is False
    assert rows["nvml"]["reason"].startswith("NVML library not found")
    assert rows["model"]["provenance"] == "modeled" and rows["model"]["available"] is True
    assert rows["estimate"]["available"] is True
    assert rows["estimate"]["provenance"] == "estimated"
    assert all(r["reason"] for r in rows.values())


@pytest.mark.slow
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
    # The same study as one JSON object, read back from its storage (no model runs).
    again = run_cli("report", str(recipe), "--json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    study = json.loads(again.stdout)
    assert study["report"] == str(report) and study["counts"]["trials"] >= 3
    assert study["counts"]["measured"] + study["counts"]["screened"] == 3
    assert study["frontier"] and all(f["provenance"] == "estimated" for f in study["frontier"])


# --- the first hour: a new user brings their own model -----------------------------------------

USER_PACKAGE = {
    "mymodels/__init__.py": "",
    "mymodels/tabular.py": """\
import torch
from torch import nn

from compresslab.tasks import Task


def build(options):
    if options.get("fail"):
        raise ValueError("the weights file is missing")
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 8, generator=gen)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    return Task(name="tabular", model=model.eval(), eval_inputs=x,
                eval_labels=(x[:, 0] > 0).long(), num_classes=3)
""",
}


def user_recipe(folder: Path, name: str, entrypoint: str, **options: object) -> Path:
    recipe = {
        "name": name,
        "task": {"entrypoint": entrypoint, "options": dict(options)},
        "compression": [{"method": "bf16"}],
        "energy": {**FAST_ENERGY, "batch_size": 16},
        "search": {"trials": 2, "sampler": "random", "confirm_pairs": 0},
        "output": str(folder / "reports"),
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.mark.slow
def test_first_hour_with_a_package_in_the_current_folder(tmp_path: Path) -> None:
    for rel, text in USER_PACKAGE.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    runs = {
        "works": ["search", str(user_recipe(tmp_path, "works", "mymodels.tabular:build"))],
        "misspelt": ["search", str(user_recipe(tmp_path, "misspelt", "mymodels.tabular:biuld"))],
        "raises": [
            "search",
            str(user_recipe(tmp_path, "raises", "mymodels.tabular:build", fail=1)),
        ],
        "raises-verbose": [
            "--verbose",
            "search",
            str(user_recipe(tmp_path, "raises-verbose", "mymodels.tabular:build", fail=1)),
        ],
    }
    # `python -P`: the current folder is not on the import path, as with the installed
    # `compresslab` command (whose own folder is there instead).
    env = {**os.environ, "COLUMNS": "200"}
    procs = {
        k: start_cli(
            args, cwd=tmp_path, env=env, command=[sys.executable, "-P", "-m", "compresslab", *args]
        )
        for k, args in runs.items()
    }
    out = {k: finish(p) for k, p in procs.items()}

    rc, stdout, stderr = out["works"]
    assert rc == 0, stderr
    report = (tmp_path / "reports" / "works" / "report.md").read_text()
    # The report says which task ran, though the user's Task has no description.
    assert "Task: tabular (entrypoint mymodels.tabular:build)" in report

    rc, _, stderr = out["misspelt"]
    assert rc == 2, stderr
    text = (tmp_path / "misspelt.yaml").read_text().splitlines()
    line = next(i for i, t in enumerate(text, 1) if "entrypoint:" in t)
    assert stderr.strip().splitlines() == [
        f"error: {tmp_path / 'misspelt.yaml'}:{line}: field 'task.entrypoint': module "
        "'mymodels.tabular' has no function 'biuld': did you mean 'build'? (check the "
        "entrypoint's name)"
    ]
    assert not (tmp_path / "reports" / "misspelt").exists()  # refused before any work

    rc, _, stderr = out["raises"]
    lines = stderr.strip().splitlines()
    assert rc == 1 and len(lines) == 1, stderr
    assert lines[0].startswith(
        "error: the entrypoint 'mymodels.tabular:build' raised ValueError: the weights file is "
        f"missing ({tmp_path / 'mymodels' / 'tabular.py'}:9)"
    ), lines[0]
    assert "--verbose" in lines[0]

    rc, _, stderr = out["raises-verbose"]
    assert rc == 1
    assert "Traceback" in stderr and 'raise ValueError("the weights file is missing")' in stderr
    assert stderr.strip().splitlines()[-1].startswith("error: the entrypoint")


@pytest.mark.slow
def test_trials_and_storage_out_of_range_exit_2(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\ntask: {name: digits}\ncompression: [{method: bf16}]\n")
    too_many = run_cli("search", str(recipe), "--trials", "100001", cwd=tmp_path)
    assert too_many.returncode == 2 and "less than or equal to 100000" in too_many.stderr
    mysql = run_cli("search", str(recipe), "--storage", "mysql://u@localhost/db", cwd=tmp_path)
    assert mysql.returncode == 2, mysql.stderr
    assert mysql.stderr.strip().splitlines() == [
        "error: --storage: unsupported storage URL 'mysql://u@localhost/db': use "
        "sqlite:///path/study.db (one process), journal:///path/study.log (several processes on "
        "one host) or postgresql://user@host/database (several hosts); see docs/fleet.md"
    ]
    for memory in ("sqlite:///:memory:", "sqlite://"):
        proc = run_cli("search", str(recipe), "--storage", memory, cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        [line] = proc.stderr.strip().splitlines()
        assert line.startswith(f"error: --storage: '{memory}' is an SQLite database in memory")
        assert "use a file path, e.g. sqlite:///reports/study.db" in line
    assert not (tmp_path / "reports").exists()


def test_an_unexpected_error_is_one_line_and_verbose_shows_its_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import compresslab.cli._app as cli

    def broken() -> None:
        raise ZeroDivisionError("[bold]boom[/]")

    for verbose in (False, True):
        monkeypatch.setattr(cli, "app", broken)
        monkeypatch.setattr(cli, "_verbose", verbose)
        with pytest.raises(SystemExit) as info:
            cli.main()
        err = capsys.readouterr().err
        assert info.value.code == 1
        assert ("Traceback" in err) is verbose
        last = err.strip().splitlines()[-1]
        assert last.startswith("error: ZeroDivisionError: [bold]boom[/] (an unexpected error")


def test_known_library_noise_is_hidden_unless_verbose(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from compresslab.cli._app import quiet_known_noise

    quiet_known_noise()
    with caplog.at_level(logging.WARNING):
        logging.getLogger("torchao").warning("Failed to load /x/_C_mxfp8.so: Could not load")
        logging.getLogger("bitsandbytes.backends.cpu.ops").warning(
            "Failed to load CPU gemm_4bit_forward from kernels-community: No module named 'x'"
        )
        logging.getLogger("torchao").warning("something torchao really wants said")
    assert [r.getMessage() for r in caplog.records] == ["something torchao really wants said"]


def test_measure_says_how_its_interval_was_made() -> None:
    from tests_support import _energy

    from compresslab.cli._measure import _interval_text
    from compresslab.protocol.repeatability import UNKNOWN

    windows_only = dataclasses.replace(
        _energy(1e-3, 2e-5),
        ci95_windows_j_per_inference=2e-5,
        repeatability_rel=None,
        repeatability_source=UNKNOWN,
    )
    text = _interval_text(windows_only, 1e3, "mJ")
    assert text.startswith("± 0.02 mJ from the windows") and UNKNOWN in text
    widened = dataclasses.replace(
        windows_only, repeatability_rel=0.12, repeatability_source="12 baseline"
    )
    text = _interval_text(widened, 1e3, "mJ")
    assert "± 12.0% between measurements, in quadrature (12 baseline)" in text


def test_measure_says_how_its_ratio_interval_was_made() -> None:
    from compresslab.cli._measure import _ratio_interval_text
    from compresslab.protocol.ratio_repeatability import RATIO_UNKNOWN
    from compresslab.records import PairedRatio

    pairs_only = PairedRatio(
        ratio=0.5,
        ci95_low=0.48,
        ci95_high=0.52,
        ci95_low_pairs=0.48,
        ci95_high_pairs=0.52,
        ratio_repeatability_rel=None,
        ratio_repeatability_source=RATIO_UNKNOWN,
    )
    text = _ratio_interval_text(pairs_only)
    assert text.startswith("[0.480, 0.520] from the pairs") and RATIO_UNKNOWN in text
    widened = dataclasses.replace(
        pairs_only,
        ci95_low=0.45,
        ci95_high=0.55,
        ratio_repeatability_rel=0.09,
        ratio_repeatability_source="3 confirmation rounds",
    )
    text = _ratio_interval_text(widened)
    assert "[0.480, 0.520] from the pairs and ± 9.0% (log scale) between spans" in text
    assert text.endswith("in quadrature (3 confirmation rounds)")
