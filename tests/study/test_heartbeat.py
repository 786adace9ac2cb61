"""Dead workers are found by their heartbeats, not by process ids.

- A trial is declared dead only after its heartbeat stayed the same for the grace period, as
  the watching worker's own clock measures it; then it fails with the reason "interrupted
  (worker stopped sending heartbeats)" and its variant is enqueued again.
- A process id is trusted only in this host's own PID namespace: there a vanished process's
  trial fails at once. A worker in another container with the same host name, whose process id
  means nothing here, keeps its trial while its heartbeats go on (the bug: it was failed).
- This process never declares its own trial dead.
- Real processes: a live worker in another PID namespace keeps its trial; a worker killed with
  SIGKILL has its trial failed after the grace period and retried by another, and together
  they reach exactly the budget.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from tests_support import FAST_ENERGY, finish, small, start_cli, wait_for_running_trial

from compresslab.study import counts_towards_budget, make_storage
from compresslab.study.heartbeat import (
    HEARTBEAT_ATTR,
    INTERVAL_ENV,
    REASON_KILLED,
    REASON_SILENT,
    Heartbeat,
    TrialWatch,
    grace_period_s,
)
from compresslab.study.workers import identity, pid_alive

pytestmark = pytest.mark.slow

TIMEOUT_S = 300


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def dead_pid() -> int:
    """The id of a process that has ended (and, for a moment, is not reused)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def running_trial(study: Any, **attrs: Any) -> Any:
    """A RUNNING trial with a variant drawn and these user attributes."""
    trial = study.ask()
    trial.suggest_float("ratio", 0.0, 1.0)
    for key, value in {"variant": "v", **attrs}.items():
        trial.set_user_attr(key, value)
    return trial


def state(study: Any, trial: Any) -> str:
    return str(study._storage.get_trial(trial._trial_id).state.name)


def test_a_trial_is_dead_after_the_grace_period_of_unchanged_heartbeats(tmp_path: Path) -> None:
    study = optuna.create_study(
        storage=make_storage(f"sqlite:///{tmp_path / 'study.db'}"),
        directions=["maximize", "minimize"],
    )
    other_container = {
        **identity(),
        "worker": "another-process",
        "pid": dead_pid(),  # no such process here: but it lives in its own PID namespace
        "pidns": "another-boot/pid:[4026532999]",
    }
    remote = running_trial(study, **other_container, **{HEARTBEAT_ATTR: 1.0})
    clock = Clock()
    watch = TrialWatch(grace_s=60, clock=clock)

    # What the PID check saw: a process of this host that does not exist. Not dead for that.
    assert other_container["host"] == socket.gethostname()
    assert not pid_alive(other_container["pid"])
    assert watch.recover(study) == []
    clock.now += 59
    assert watch.recover(study) == [] and state(study, remote) == "RUNNING"
    # A new heartbeat: the grace period starts again.
    study._storage.set_trial_user_attr(remote._trial_id, HEARTBEAT_ATTR, 2.0)
    clock.now += 30
    assert watch.recover(study) == []
    clock.now += 59
    assert watch.recover(study) == [] and state(study, remote) == "RUNNING"
    clock.now += 1
    assert watch.recover(study) == [(remote.number, REASON_SILENT)]

    trials = study.get_trials()
    failed = trials[remote.number]
    assert failed.state.name == "FAIL" and failed.user_attrs["error"] == REASON_SILENT
    [retry] = [t for t in trials if t.user_attrs.get("retry_of") == remote.number]
    assert retry.state.name == "WAITING"
    assert retry.system_attrs["fixed_params"] == failed.params
    # Retried once only, however often the watch looks.
    clock.now += 600
    watch.recover(study)
    assert len([t for t in study.get_trials() if t.user_attrs.get("retry_of") is not None]) == 1


def test_a_vanished_process_of_this_namespace_is_dead_at_once_and_this_one_never(
    tmp_path: Path,
) -> None:
    study = optuna.create_study(
        storage=make_storage(f"sqlite:///{tmp_path / 'study.db'}"),
        directions=["maximize", "minimize"],
    )
    here = identity()
    killed = running_trial(study, **{**here, "worker": "killed", "pid": dead_pid()})
    mine = running_trial(study, **here, **{HEARTBEAT_ATTR: 1.0})
    no_heartbeat_yet = running_trial(study)  # a worker that died before writing anything
    clock = Clock()
    watch = TrialWatch(grace_s=5, clock=clock)
    assert watch.recover(study) == [(killed.number, REASON_KILLED)]
    clock.now += 3600
    assert watch.recover(study) == [(no_heartbeat_yet.number, REASON_SILENT)]
    assert state(study, mine) == "RUNNING", "this process's own trial is never dead to it"


def test_a_heartbeat_thread_refreshes_its_trial_and_stops_when_it_is_finished(
    tmp_path: Path,
) -> None:
    study = optuna.create_study(
        storage=make_storage(f"journal:///{tmp_path / 'study.log'}"),
        directions=["maximize", "minimize"],
    )
    trial = study.ask()
    with Heartbeat(study._storage, trial._trial_id, every_s=0.05) as heart:
        first = study._storage.get_trial(trial._trial_id).user_attrs[HEARTBEAT_ATTR]
        time.sleep(0.3)
        later = study._storage.get_trial(trial._trial_id).user_attrs[HEARTBEAT_ATTR]
        assert later > first
        study.tell(trial, state=optuna.trial.TrialState.FAIL)  # e.g. failed by another worker
        time.sleep(0.2)
        assert not heart._thread.is_alive(), "a finished trial takes no more heartbeats"


# --- real processes ---------------------------------------------------------------------

#: Runs the command line as if in another container with the same host name: its own PID
#: namespace, where its process id is FAKE_PID (a process id that means nothing here).
OTHER_CONTAINER = """
import os
import sys

import compresslab.study.workers as workers

FAKE_PID = int(sys.argv.pop(1))


class ContainerOs:
    def __getattr__(self, name):
        return getattr(os, name)

    @staticmethod
    def getpid():
        return FAKE_PID


workers.os = ContainerOs()
workers.pid_namespace = lambda: "other-container-boot/pid:[4026532777]"
from compresslab.cli import main

sys.argv[0] = "compresslab"
main()
"""


def recipe_file(tmp_path: Path, trials: int) -> Path:
    # Every variant is measured (no screening), for about 2 s: longer than the grace period.
    energy = {**FAST_ENERGY, "window_s": 0.5, "min_windows": 2, "max_windows": 2}
    path = tmp_path / "small.yaml"
    search = {"trials": trials, "sampler": "random", "seed": 1, "screen_examples": 0}
    path.write_text(yaml.safe_dump(small(tmp_path, energy=energy, search=search)))
    return path


def worker(args: list[str], *, cwd: Path, fake_pid: int | None = None) -> subprocess.Popen[str]:
    """``compresslab ARGS``; with ``fake_pid``, as if in another container (see above)."""
    env = {
        **os.environ,
        "COMPRESSLAB_LOCK_DIR": str(cwd),
        "COLUMNS": "200",
        INTERVAL_ENV: os.environ[INTERVAL_ENV],
    }
    if fake_pid is None:
        command = [sys.executable, "-m", "compresslab", *args]
    else:
        script = cwd / "other_container.py"
        script.write_text(textwrap.dedent(OTHER_CONTAINER))
        command = [sys.executable, str(script), str(fake_pid), *args]
    return start_cli(args, cwd=cwd, env=env, command=command)


@pytest.fixture
def short_heartbeats(monkeypatch: pytest.MonkeyPatch) -> float:
    """Heartbeats every 0.15 s (workers started from here too): a grace period of 0.9 s."""
    monkeypatch.setenv(INTERVAL_ENV, "0.15")
    return grace_period_s()


def test_a_live_worker_in_another_pid_namespace_keeps_its_trial(
    tmp_path: Path, digits_task: Any, short_heartbeats: float
) -> None:
    recipe = recipe_file(tmp_path, trials=2)
    url = f"journal:///{tmp_path / 'study.log'}"
    proc = worker(["search", str(recipe), "--storage", url], cwd=tmp_path, fake_pid=dead_pid())
    try:
        # The first variant after the baseline: measured paired with it (about 2 s).
        held = wait_for_running_trial(proc, url, after_complete=1)
        # The old check's view: a process of this host whose id does not exist.
        assert held.user_attrs["host"] == socket.gethostname()
        assert not pid_alive(held.user_attrs["pid"])
        # This process watches like another worker would, for longer than the grace period.
        study = optuna.load_study(study_name="small", storage=make_storage(url))
        watch = TrialWatch()
        t0 = time.monotonic()
        while study._storage.get_trial(held._trial_id).state.name == "RUNNING":
            assert watch.recover(study) == []
            time.sleep(0.1)
        assert time.monotonic() - t0 > short_heartbeats, "the trial outlived a grace period"
    finally:
        rc, _, stderr = finish(proc)
    assert rc == 0, stderr
    trials = optuna.load_study(study_name="small", storage=make_storage(url)).get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    assert trials[held.number].user_attrs["pid"] == held.user_attrs["pid"]


def test_a_killed_workers_trial_fails_after_the_grace_period_and_is_retried(
    tmp_path: Path, digits_task: Any, short_heartbeats: float
) -> None:
    target = 3
    recipe = recipe_file(tmp_path, trials=target)
    url = f"journal:///{tmp_path / 'study.log'}"
    args = ["search", str(recipe), "--storage", url]
    # In another container: only its heartbeats can tell that it died.
    victim_proc = worker(args, cwd=tmp_path, fake_pid=dead_pid())
    try:
        victim = wait_for_running_trial(victim_proc, url, after_complete=1)
        os.kill(victim_proc.pid, signal.SIGKILL)
    finally:
        finish(victim_proc)
    assert victim_proc.returncode == -signal.SIGKILL

    rc, _, stderr = finish(worker(args, cwd=tmp_path))
    assert rc == 0, stderr
    assert "Traceback" not in stderr
    assert REASON_SILENT in stderr and "its variant is retried" in stderr

    trials = optuna.load_study(study_name="small", storage=make_storage(url)).get_trials()
    dead = trials[victim.number]
    assert dead.state.name == "FAIL" and dead.user_attrs["error"] == REASON_SILENT
    # Failed only once its heartbeat was older than the grace period.
    assert dead.datetime_complete is not None
    silent_for = dead.datetime_complete.timestamp() - dead.user_attrs[HEARTBEAT_ATTR]
    assert silent_for >= short_heartbeats
    [retry] = [t for t in trials if t.user_attrs.get("retry_of") == victim.number]
    assert retry.params == dead.params and retry.state.name == "COMPLETE"
    evaluated = [t for t in trials if counts_towards_budget(t)]
    assert len(evaluated) == target
    assert len({t.user_attrs["variant"] for t in evaluated}) == target
    assert not [t.number for t in trials if t.state.name in ("RUNNING", "WAITING")]
