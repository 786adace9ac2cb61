"""The search's own energy: one entry per session, checkpointed after every trial.

A killed session keeps the energy of its last checkpoint, and the report counts the sessions
and says how many ended by a kill. Workers sharing a study each write only their own entry.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from tests_support import FAST_ENERGY, finish, small, start_cli, wait_for_study

from compresslab.api import load_recipe, rebuild_report
from compresslab.energy.base import ComponentEnergy, Provenance, Reading
from compresslab.errors import MeasurementError
from compresslab.study import load_result, make_storage, sessions_of
from compresslab.study.sessions import STALE_S, Session, session_state
from compresslab.study.workers import identity

TIMEOUT_S = 300


class FakeCost:
    """A sampler whose windows hold 1 J, 2 J, 3 J ... (one window may be refused)."""

    name = "fake"
    provenance = Provenance.ESTIMATED

    def __init__(self, *, refuse: set[int] | None = None) -> None:
        self.joules = itertools.count(1)
        self.refuse = refuse or set()
        self.windows = 0
        self.open = False

    def start(self) -> None:
        assert not self.open, "started twice"
        self.open = True

    def stop(self) -> Reading:
        assert self.open, "stopped before it was started"
        self.open = False
        self.windows += 1
        j = float(next(self.joules))
        if self.windows in self.refuse:
            raise MeasurementError("window shorter than the counter's update period")
        return Reading(duration_s=0.5, components=(ComponentEnergy("cpu", j, self.provenance),))


def _memory_study(tmp_path: Path) -> tuple[Any, str]:
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(study_name="s", storage=make_storage(url), directions=["maximize"])
    return study, url


def test_a_session_is_written_at_start_checkpointed_and_finished(tmp_path: Path) -> None:
    study, _ = _memory_study(tmp_path)
    cost = FakeCost(refuse={2})
    cost.start()
    session = Session(study, cost)
    [entry] = sessions_of(study.user_attrs)
    assert entry["energy_j"] == 0 and entry["finished"] is False and entry["state"] == "running"

    session.checkpoint()  # window 1: 1 J
    session.checkpoint()  # window 2 refused: nothing added, the sampler is open again
    assert cost.open
    [entry] = sessions_of(optuna.load_study(study_name="s", storage=study._storage).user_attrs)
    assert entry["energy_j"] == 1.0 and entry["checkpoints"] == 2 and not entry["finished"]

    session.finish()  # window 3: 3 J
    assert not cost.open
    [entry] = sessions_of(study.user_attrs)
    assert entry["energy_j"] == 4.0 and entry["duration_s"] == 1.0
    assert entry["finished"] is True and entry["outcome"] == "complete"
    assert entry["state"] == "finished" and entry["provenance"] == "estimated"


def test_workers_on_one_study_never_overwrite_each_others_sessions(tmp_path: Path) -> None:
    study, url = _memory_study(tmp_path)
    # Two workers, each with its own handle on the shared storage, checkpointing in turns.
    other = optuna.load_study(study_name="s", storage=make_storage(url))
    a_cost, b_cost = FakeCost(), FakeCost()
    a_cost.start()
    b_cost.start()
    a, b = Session(study, a_cost), Session(other, b_cost)
    for _ in range(3):
        a.checkpoint()
        b.checkpoint()
    a.finish()
    entries = {s["session"]: s for s in sessions_of(other.user_attrs)}
    assert set(entries) == {a.id, b.id}
    assert entries[a.id]["energy_j"] == 1 + 2 + 3 + 4 and entries[a.id]["state"] == "finished"
    assert entries[b.id]["energy_j"] == 1 + 2 + 3 and entries[b.id]["checkpoints"] == 3


def test_a_session_ended_by_an_error_says_so_and_never_raises(tmp_path: Path) -> None:
    study, _ = _memory_study(tmp_path)
    cost = FakeCost()
    cost.start()
    session = Session(study, cost)
    session.checkpoint()
    session.abandon("interrupted")
    [entry] = sessions_of(study.user_attrs)
    assert entry["finished"] and entry["outcome"] == "interrupted" and entry["energy_j"] == 3.0
    session.abandon("again")  # the sampler is closed: still no exception


@pytest.mark.slow
def test_session_state_tells_killed_from_running(tmp_path: Path) -> None:
    here = socket.gethostname()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    now = time.time()
    assert session_state({"finished": True}) == "finished"
    assert session_state({"energy_j": 3.0}) == "finished"  # the older versions' entries
    mine = {"finished": False, **identity(), "updated_unix": 0.0}
    assert mine["host"] == here and mine["pid"] == os.getpid()
    assert session_state(mine) == "running"
    assert session_state({**mine, "pid": dead.pid}) == "killed"
    # Another container with this host name: its process ids are not ours to look up, so
    # only its checkpoints tell (an entry from before namespaces were recorded: likewise).
    for other in ({**mine, "pidns": "another/pid:[1]"}, {**mine, "pidns": None}):
        assert session_state({**other, "pid": dead.pid, "updated_unix": now - 5}, now=now) == (
            "running"
        )
        assert session_state({**other, "pid": dead.pid}, now=now) == "killed"
    remote = {"finished": False, "host": "elsewhere", "pid": 1, "updated_unix": now - 5}
    assert session_state(remote, now=now) == "running"
    assert session_state({**remote, "updated_unix": now - STALE_S - 1}, now=now) == "killed"


def test_older_studies_single_list_is_still_read(tmp_path: Path) -> None:
    legacy = [{"energy_j": 5.0, "duration_s": 1.0, "provenance": "estimated", "host": "h"}]
    sessions = sessions_of(
        {
            "search_energy": legacy,
            "search_energy:b": {"session": "b", "started": "2", "energy_j": 1.0, "finished": True},
            "search_energy:a": {"session": "a", "started": "1", "energy_j": 2.0, "finished": True},
        }
    )
    assert [s.get("session") for s in sessions] == [None, "a", "b"]
    assert [s["state"] for s in sessions] == ["finished"] * 3


@pytest.mark.slow
def test_a_killed_session_keeps_its_energy_and_the_report_counts_it(tmp_path: Path) -> None:
    # Every variant is measured (no screening) for at least 1 s: the kill lands mid-search.
    energy = {**FAST_ENERGY, "window_s": 0.5, "min_windows": 2, "max_windows": 2}
    recipe = tmp_path / "small.yaml"
    recipe.write_text(
        yaml.safe_dump(
            small(
                tmp_path,
                energy=energy,
                search={"trials": 5, "sampler": "random", "seed": 1, "screen_examples": 0},
            )
        )
    )
    out = tmp_path / "reports" / "small"
    storage = f"sqlite:///{out / 'study.db'}"

    def two_checkpoints(study: Any) -> dict[str, Any] | None:
        done = [t for t in study.get_trials() if t.state.name == "COMPLETE"]
        entries = sessions_of(study.user_attrs)
        if len(done) >= 2 and entries and entries[0]["checkpoints"] >= 2:
            return entries[0]
        return None

    proc = start_cli(["search", str(recipe)], cwd=tmp_path)
    try:
        checkpointed = wait_for_study(
            proc, storage, two_checkpoints, failure="the search never checkpointed two trials"
        )
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        finish(proc, TIMEOUT_S)
    assert proc.returncode == -signal.SIGKILL

    rc, _, stderr = finish(start_cli(["search", str(recipe)], cwd=tmp_path), TIMEOUT_S)
    assert rc == 0, stderr

    result = rebuild_report(recipe)
    sessions = result.info["search_energy"]
    assert [s["state"] for s in sessions] == ["killed", "finished"]
    killed = sessions[0]
    assert killed["session"] == checkpointed["session"]
    assert killed["energy_j"] >= checkpointed["energy_j"] > 0
    assert sessions[1]["energy_j"] > 0
    report = " ".join((out / "report.md").read_text().split())
    assert "over 2 session(s) (1 ended by a kill)" in report
    assert "after its last checkpoint (at most one trial) is not counted" in report
    # The same figures from the storage alone (what `compresslab report` reads).
    again = load_result(load_recipe(recipe))
    assert [s["session"] for s in again.info["search_energy"]] == [s["session"] for s in sessions]


@pytest.mark.slow
def test_two_workers_on_a_journal_each_record_their_own_session(tmp_path: Path) -> None:
    recipe = tmp_path / "small.yaml"
    recipe.write_text(
        yaml.safe_dump(small(tmp_path, search={"trials": 4, "sampler": "random", "seed": 1}))
    )
    journal = f"journal:{tmp_path / 'study.log'}"
    workers = [
        start_cli(["search", str(recipe), "--storage", journal], cwd=tmp_path) for _ in range(2)
    ]
    for w in workers:
        rc, _, stderr = finish(w, TIMEOUT_S)
        assert rc == 0, stderr
    sessions = load_result(load_recipe(recipe), storage=journal).info["search_energy"]
    assert len(sessions) == 2 and len({s["session"] for s in sessions}) == 2
    assert {s["pid"] for s in sessions} == {w.pid for w in workers}
    assert all(s["state"] == "finished" and s["energy_j"] > 0 for s in sessions)
