"""The search loop under interruptions: Ctrl-C, and a second search on the same SQLite study.

- Ctrl-C (SIGINT) in the middle of a trial: exit code 130 and one line, "interrupted after N of
  M variants; run the same command again to resume", no traceback; the report lists what was
  completed; the interrupted trial is failed with the reason "interrupted (Ctrl-C)", and the
  same command run again retries its variant and ends with exactly the budget.
- Two searches started at once on one SQLite study work like two workers of a fleet: neither
  fails the other's live trial, neither crashes ("Cannot tell a FAIL trial"), and together
  they evaluate exactly the budget.
- A finished search teaches this machine's repeatability store (the baseline measured beside
  each variant here).
"""

from __future__ import annotations

import csv
import signal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import optuna
import pytest
import yaml
from tests_support import FAST_ENERGY, finish, small, start_cli, wait_for_running_trial

from compresslab.machine import machine_id
from compresslab.protocol.repeatability import RepeatabilityStore, tier_of
from compresslab.stats import cv
from compresslab.study import counts_towards_budget, make_storage
from compresslab.study.heartbeat import REASON_CTRL_C
from compresslab.study.predict import MACHINE_ATTR
from compresslab.study.run import learn_repeatability

pytestmark = pytest.mark.slow

TIMEOUT_S = 300


def recipe_file(tmp_path: Path, trials: int, window_s: float = 0.5) -> Path:
    # Every variant is measured (no screening), for a second or more: a signal lands in a trial.
    energy = {**FAST_ENERGY, "window_s": window_s, "min_windows": 2, "max_windows": 2}
    search = {"trials": trials, "sampler": "random", "seed": 1, "screen_examples": 0}
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(small(tmp_path, energy=energy, search=search)))
    return path


def trials_of(url: str) -> list[Any]:
    return list(optuna.load_study(study_name="small", storage=make_storage(url)).get_trials())


def test_ctrl_c_says_how_far_it_got_and_the_same_command_resumes(
    tmp_path: Path, digits_task: Any
) -> None:
    target = 3
    recipe = recipe_file(tmp_path, target)
    out = tmp_path / "reports" / "small"
    url = f"sqlite:///{out / 'study.db'}"
    proc = start_cli(["search", str(recipe)], cwd=tmp_path)
    try:
        victim = wait_for_running_trial(proc, url)
        proc.send_signal(signal.SIGINT)
    finally:
        rc, stdout, stderr = finish(proc)

    assert rc == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    completed = sum(1 for t in trials_of(url) if counts_towards_budget(t))
    said = [line for line in stderr.splitlines() if "interrupted" in line]
    assert said == [
        f"interrupted after {completed} of {target} variants; run the same command again to resume"
    ], stderr
    assert stderr.strip().splitlines()[-1] == said[0]
    assert "Pareto frontier" not in stdout

    trials = trials_of(url)
    stopped = trials[victim.number]
    assert stopped.state.name == "FAIL" and stopped.user_attrs["error"] == REASON_CTRL_C
    assert not [t.number for t in trials if t.state.name == "RUNNING"]
    # The report of what was done, with the interrupted trial and its reason.
    with open(out / "trials.csv", newline="") as fh:
        rows = {int(r["trial"]): r for r in csv.DictReader(fh)}
    assert sorted(rows) == [t.number for t in trials]
    assert REASON_CTRL_C in (out / "report.md").read_text()

    rc, _, stderr = finish(start_cli(["search", str(recipe)], cwd=tmp_path))
    assert rc == 0, stderr
    trials = trials_of(url)
    evaluated = [t for t in trials if counts_towards_budget(t)]
    assert len(evaluated) == target
    assert len({t.user_attrs["variant"] for t in evaluated}) == target
    [retry] = [t for t in trials if t.user_attrs.get("retry_of") == victim.number]
    assert retry.params == stopped.params and retry.state.name == "COMPLETE"
    assert not [t.number for t in trials if t.state.name in ("RUNNING", "WAITING")]


def test_two_searches_on_one_sqlite_study_share_it_like_a_fleet(
    tmp_path: Path, digits_task: Any
) -> None:
    target = 4
    recipe = recipe_file(tmp_path, target)
    url = f"sqlite:///{tmp_path / 'reports' / 'small' / 'study.db'}"
    first = start_cli(["search", str(recipe)], cwd=tmp_path)
    try:
        # The second starts (the same command, in another terminal) while the first measures.
        held = wait_for_running_trial(first, url)
        second = start_cli(["search", str(recipe)], cwd=tmp_path)
    finally:
        results = [finish(first)]
    results.append(finish(second))
    for rc, _, stderr in results:
        assert rc == 0, stderr
        assert "Traceback" not in stderr and "Cannot tell" not in stderr, stderr
        assert "interrupted" not in stderr, stderr

    trials = trials_of(url)
    assert trials[held.number].state.name == "COMPLETE", "the first search's trial lived on"
    assert not [(t.number, t.user_attrs.get("error")) for t in trials if t.state.name == "FAIL"]
    assert not [t.number for t in trials if t.state.name in ("RUNNING", "WAITING")]
    evaluated = [t for t in trials if counts_towards_budget(t)]
    assert len(evaluated) == target, [(t.number, t.state.name, t.user_attrs) for t in trials]
    assert sum(1 for t in evaluated if t.user_attrs["is_baseline"]) == 1
    assert {t.user_attrs["pid"] for t in trials if "pid" in t.user_attrs} <= {
        first.pid,
        second.pid,
    }


# --- the repeatability store ---------------------------------------------------------------


def trial(j: float | None, *, machine: str, state: str = "COMPLETE") -> SimpleNamespace:
    ref = None if j is None else {"energy_j_per_inference": j, "sampler": "estimate"}
    if ref is not None:
        ref["provenance"] = "estimated"
    return SimpleNamespace(
        state=SimpleNamespace(name=state),
        user_attrs={"reference_energy": ref, MACHINE_ATTR: machine},
    )


def fake_study(trials: list[Any]) -> SimpleNamespace:
    return SimpleNamespace(study_name="digits", get_trials=lambda deepcopy=False: trials)


def test_the_baseline_beside_each_variant_here_becomes_the_machines_term(
    repeatability_store: Path,
) -> None:
    here, there = machine_id(), "0123456789ab"
    mine = [1.0, 1.1, 0.9, 1.05]
    trials = [trial(None, machine=here)]  # the baseline trial: no reference side
    trials += [trial(j, machine=here) for j in mine]
    trials += [trial(5.0, machine=there), trial(9.0, machine=there)]  # a fleet's other worker
    trials += [trial(3.0, machine=here, state="FAIL")]
    kept = learn_repeatability(fake_study(trials), "sqlite:///x/study.db")
    assert kept == {"estimate/estimated": 4}

    term = RepeatabilityStore().term(tier_of("estimate", "estimated"))
    assert term is not None
    assert term.n == 4 and term.cv == pytest.approx(cv(mine))  # this machine's trials only
    assert "4 baseline measurements of study digits" in term.source
    assert str(repeatability_store) in str(RepeatabilityStore().path)


def test_a_study_with_too_few_baseline_measurements_teaches_nothing() -> None:
    trials = [trial(1.0, machine=machine_id()), trial(1.2, machine=machine_id())]
    assert learn_repeatability(fake_study(trials), "sqlite:///x/study.db") == {}
    assert RepeatabilityStore().term(tier_of("estimate", "estimated")) is None
    assert not RepeatabilityStore().path.exists()
