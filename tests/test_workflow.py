"""examples/ci/energy-gate.yml works when pasted into a user's repository.

The workflow is valid YAML; every ``compresslab`` command it runs (and the one-time command its
header tells the user to run) exists with those flags; and its steps, run in order in a scratch
copy of a user-like repository, gate as they should: the pip installs are skipped (a ``python``
on PATH answers ``-m pip`` with a no-op), everything else runs as written, with the runner's
files (``$GITHUB_ENV``, ``$GITHUB_STEP_SUMMARY``, ``$RUNNER_TEMP``) in place.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from gate_support import commit, set_slow, user_repo
from tests_support import run_cli
from typer.testing import CliRunner

from compresslab.cli import app

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / "examples" / "ci" / "energy-gate.yml"
_OPERATORS = {">", ">>", "<", "|", "||", "&&", ";", "&", "2>", "2>&1", ")", "("}


def _workflow() -> dict[Any, Any]:
    data = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _steps() -> list[dict[str, Any]]:
    [job] = _workflow()["jobs"].values()
    return list(job["steps"])


def _invocations(script: str) -> list[list[str]]:
    """Each ``compresslab ...`` command in a shell script: its words up to a shell operator."""
    script = script.replace("\\\n", " ")
    found = []
    for line in script.splitlines():
        line = line.split(" #", 1)[0].strip()
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words = list(lexer)
        for i, word in enumerate(words):
            if word == "compresslab":
                command = []
                for w in words[i + 1 :]:
                    if w in _OPERATORS:
                        break
                    command.append(w)
                found.append(command)
    return found


def _header_commands() -> list[list[str]]:
    """The ``compresslab`` commands the workflow's comments tell the user to run."""
    lines = [
        line.lstrip("#").strip()
        for line in WORKFLOW.read_text(encoding="utf-8").splitlines()
        if line.startswith("#")
    ]
    return [c for line in lines if line.startswith("compresslab ") for c in _invocations(line)]


def test_the_workflow_is_valid_and_complete() -> None:
    data = _workflow()
    # YAML 1.1 reads the key `on` as True.
    triggers = data.get("on", data.get(True))
    assert set(triggers) == {"pull_request", "push"}
    steps = _steps()
    uses = [s["uses"] for s in steps if "uses" in s]
    assert any(u.startswith("actions/checkout@") for u in uses)
    assert any(u.startswith("actions/setup-python@") for u in uses)
    assert any(u.startswith("actions/cache@") for u in uses)  # pip's downloads are cached
    assert all(("uses" in s) != ("run" in s) for s in steps)
    scripts = "\n".join(s["run"] for s in steps if "run" in s)
    assert "$GITHUB_STEP_SUMMARY" in scripts and "gh pr comment" in scripts
    assert "compresslab requirements" in scripts and "$GITHUB_ENV" in scripts
    # No variable has to exist: each one the workflow reads has a default or is optional.
    env = data["env"]
    for name in ("COMPRESSLAB_SPEC", "TORCH_SPEC"):
        assert "||" in env[name], f"{name} needs a default"
    text = WORKFLOW.read_text(encoding="utf-8")
    assert not re.search(r"https?://(?!github\.com/)", text), "no package-registry host named"


def _flags_of(command: list[str]) -> list[str]:
    return [w.split("=", 1)[0] for w in command if w.startswith("--")]


def test_every_compresslab_command_exists_with_its_flags() -> None:
    import typer.main

    commands = [c for s in _steps() if "run" in s for c in _invocations(s["run"])]
    commands += _header_commands()
    assert len(commands) >= 4  # requirements, the gate, baseline, --reference-rev
    click_app = typer.main.get_command(app)
    runner = CliRunner()
    for command in commands:
        name = command[0]
        assert name in click_app.commands, f"compresslab has no command {name!r}"  # type: ignore[attr-defined]
        declared = {
            opt
            for p in click_app.commands[name].params  # type: ignore[attr-defined]
            for opt in (*p.opts, *p.secondary_opts)
        }
        result = runner.invoke(app, [name, "--help"], env={"COLUMNS": "240"}, terminal_width=240)
        assert result.exit_code == 0, result.output
        for flag in _flags_of(command):
            assert flag in declared, f"`compresslab {name}` has no flag {flag}"
            assert flag in result.output, f"`compresslab {name} --help` does not show {flag}"


def _shims(folder: Path) -> Path:
    """``python`` (``-m pip`` skipped) and ``compresslab`` running this interpreter."""
    folder.mkdir()
    (folder / "python").write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then echo "(skipped: pip $*)"; exit 0; fi\n'
        f'exec "{sys.executable}" "$@"\n'
    )
    (folder / "compresslab").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m compresslab "$@"\n')
    for shim in folder.iterdir():
        shim.chmod(0o755)
    return folder


def _run_job(repo: Path, tmp: Path) -> dict[str, Any]:
    """The job's steps in order, as a runner would run them on a push; the gate's result."""
    tmp.mkdir()
    env_file, summary = tmp / "github_env", tmp / "summary.md"
    env_file.touch()
    here = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {
        **os.environ,
        "PATH": f"{_shims(tmp / 'bin')}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": here,  # compresslab itself: what the pip install provides on a runner
        "GITHUB_WORKSPACE": str(repo),
        "GITHUB_ENV": str(env_file),
        "GITHUB_STEP_SUMMARY": str(summary),
        "RUNNER_TEMP": str(tmp),
        "COLUMNS": "200",
        **{k: str(v) for k, v in _workflow()["env"].items() if "${{" not in str(v)},
    }
    codes = {}
    for step in _steps():
        if "run" not in step or "github.event_name == 'pull_request'" in step.get("if", ""):
            continue  # actions, and the pull-request comment (this is a push)
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        codes[step["name"]] = proc
        if proc.returncode != 0:
            break
        for line in env_file.read_text().splitlines():  # what the step exported
            name, _, value = line.partition("=")
            env[name] = value
    return {"codes": codes, "summary": summary.read_text() if summary.exists() else "", "env": env}


@pytest.mark.slow
def test_the_workflow_gates_a_user_repository(tmp_path: Path) -> None:
    repo = user_repo(tmp_path / "user")
    env = _workflow()["env"]
    # The one-time set-up the header gives, with the workflow's own RECIPE and BASELINE.
    [update] = [c for c in _header_commands() if c[0] == "baseline"]
    assert update == ["baseline", env["RECIPE"], "--out", env["BASELINE"]]
    made = run_cli(*update, cwd=repo, env={"PYTHONPATH": os.pathsep.join([str(repo), str(ROOT)])})
    assert made.returncode == 0, made.stderr
    commit(repo, "energy baseline")

    job = _run_job(repo, tmp_path / "run1")
    gate = job["codes"]["Energy gate"]
    assert gate.returncode == 0, gate.stdout + gate.stderr
    assert all(p.returncode == 0 for p in job["codes"].values())
    assert "(skipped: pip -m pip install" in job["codes"]["Install torch"].stdout
    assert str(repo) in job["env"]["PYTHONPATH"].split(os.pathsep)
    assert "compresslab energy gate" in job["summary"]

    set_slow(repo, True)  # a commit whose forward does twice the work, with no new layer
    commit(repo, "a slower forward")
    job = _run_job(repo, tmp_path / "run2")
    gate = job["codes"]["Energy gate"]
    assert gate.returncode == 1, gate.stdout + gate.stderr
    assert "REGRESSION" in job["summary"]
