"""Several search workers share one study: on a real PostgreSQL server, and on a journal file.

What a fleet must guarantee, checked on the study the workers leave behind:

- together they evaluate exactly the requested number of distinct variants
  (:func:`compresslab.study.counts_towards_budget`), however the trials interleave;
- no variant is measured twice, except by two workers that drew it in the same instant (each
  read the study before the other wrote its variant; such trials overlap in time, which is
  asserted): a variant that another worker is already evaluating is skipped, a finished one
  is reused;
- every trial records the host and process that ran it, and no trial is left RUNNING;
- measurements on one host take turns (the host lock): while the test holds the lock, no
  worker can finish a measurement;
- the report rebuilt from the storage alone (``compresslab report --storage``) lists every
  trial, and its frontier is the non-dominated set of the stored trials.

A broken storage (a corrupt ``study.db``, a closed port) and an unknown URL scheme end with
one message that names the storage and the fix, and no traceback. (The faults of each storage
are tested in ``tests/study/``: ``test_journal``, ``test_storage_errors``, ``test_heartbeat``,
``test_run``.)
"""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from pg_support import free_port, postgres_server
from tests_support import small, start_cli

from compresslab.api import load_recipe, rebuild_report, search
from compresslab.errors import StorageError
from compresslab.protocol import host_lock
from compresslab.study import counts_towards_budget, make_storage
from compresslab.study.records import CONSTRAINT

pytestmark = pytest.mark.slow

WORKER_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """A PostgreSQL server of its own for this module (stopped afterwards, always)."""
    with postgres_server() as url:
        yield url


def write_recipe(tmp_path: Path, **search: Any) -> Path:
    path = tmp_path / "small.yaml"
    path.write_text(
        yaml.safe_dump(small(tmp_path, search={"sampler": "random", "seed": 1, **search}))
    )
    return path


def worker_env(lock_dir: Path) -> dict[str, str]:
    # COMPRESSLAB_CACHE_DIR (the trained CNN) comes from conftest through os.environ.
    return {**os.environ, "COMPRESSLAB_LOCK_DIR": str(lock_dir), "COLUMNS": "200"}


def start(args: list[str], *, cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return start_cli(args, cwd=cwd, env=env)


def kill(procs: list[subprocess.Popen[str]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def finish(procs: list[subprocess.Popen[str]]) -> list[tuple[int, str, str]]:
    """Wait for every process (killing them all past the timeout); (rc, stdout, stderr)."""
    deadline = time.monotonic() + WORKER_TIMEOUT_S
    out = []
    try:
        for p in procs:
            stdout, stderr = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            out.append((p.returncode, stdout, stderr))
    finally:
        kill(procs)
    return out


def load(storage: str | Any) -> Any:
    """The workers' study, from a URL or an open storage."""
    if isinstance(storage, str):
        storage = make_storage(storage)
    return optuna.load_study(study_name="small", storage=storage)


def assert_fleet_invariants(study: Any, *, target: int, pids: set[int]) -> None:
    trials = study.get_trials(deepcopy=False)
    assert len({t.number for t in trials}) == len(trials)
    assert not [t.number for t in trials if t.state.name == "RUNNING"]

    evaluated = [t for t in trials if counts_towards_budget(t)]
    assert len(evaluated) == target, [(t.number, t.state.name, t.user_attrs) for t in trials]
    assert sum(1 for t in evaluated if t.user_attrs["is_baseline"]) == 1

    # A variant evaluated twice: only by two trials that ran at the same time.
    by_variant: dict[str, list[Any]] = {}
    for t in evaluated:
        by_variant.setdefault(t.user_attrs["variant"], []).append(t)
    for variant, group in by_variant.items():
        for a, b in zip(group, group[1:], strict=False):
            assert b.datetime_start < a.datetime_complete, (
                f"{variant} was measured by trial {a.number} and again by trial {b.number} "
                "after the first had finished: it should have been reused"
            )

    # A reused trial copies a finished evaluation of the same variant.
    numbers = {t.number: t for t in trials}
    for t in trials:
        source = t.user_attrs.get("reused_from")
        if source is None:
            continue
        first = numbers[source]
        assert counts_towards_budget(first)
        assert first.user_attrs["variant"] == t.user_attrs["variant"]
        if t.state.name == "COMPLETE":
            assert t.values == first.values
            assert t.user_attrs["energy"] == first.user_attrs["energy"]

    # Every trial that ran says where: this host, one of the workers.
    host = socket.gethostname()
    ran = [t for t in trials if "variant" in t.user_attrs]
    assert ran and all(t.user_attrs["host"] == host for t in ran)
    assert {t.user_attrs["pid"] for t in ran} <= pids


def non_dominated(study: Any, recipe_path: Path) -> set[int]:
    """Brute force over the stored trials: feasible, measured, not reused, not dominated.

    Feasible is Optuna's own record of the constraint each trial set (at most 0: its accuracy
    was decided within the tolerance on the same examples as the baseline's).
    """
    del recipe_path  # the tolerance is decided per trial, in its stored constraint
    pool = [
        (t.number, t.values[0], t.values[1])
        for t in study.get_trials(deepcopy=False)
        if t.state.name == "COMPLETE"
        and t.user_attrs.get("reused_from") is None
        and t.constraints[CONSTRAINT] <= 0
    ]
    return {
        n
        for n, acc, j in pool
        if not any(a >= acc and e <= j and (a > acc or e < j) for m, a, e in pool if m != n)
    }


def assert_report_rebuilt(
    recipe_path: Path, storage: str, study: Any, env: dict[str, str] | None
) -> None:
    """``compresslab report --storage`` (or, without ``env``, the API call behind it)."""
    out = recipe_path.parent / "reports" / "small"
    for name in ("trials.csv", "report.md"):  # the workers' own reports: rebuilt below
        (out / name).unlink()
    if env is None:
        rebuild_report(recipe_path, storage=storage)
    else:
        args = ["report", str(recipe_path), "--storage", storage]
        ((rc, _, stderr),) = finish([start(args, cwd=recipe_path.parent, env=env)])
        assert rc == 0, stderr
        assert "Traceback" not in stderr
    assert "small" in (out / "report.md").read_text()
    with open(out / "trials.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    stored = study.get_trials(deepcopy=False)
    assert sorted(int(r["trial"]) for r in rows) == sorted(t.number for t in stored)
    front = {int(r["trial"]) for r in rows if r["pareto"] == "True"}
    assert front == non_dominated(study, recipe_path)
    assert front, "the baseline at least is feasible"
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]


def wait_until_each_worker_holds_a_trial(
    url: str, procs: list[subprocess.Popen[str]]
) -> dict[int, int]:
    """Poll the study until every worker has had the same RUNNING trial for two polls.

    Meanwhile nothing may complete: every trial needs a measurement, and the test holds the
    host's measurement lock. Returns {pid: trial number}.
    """
    pids = {p.pid for p in procs}
    storage: Any = None
    last: dict[int, int] = {}
    held: dict[int, int] = {}
    deadline = time.monotonic() + WORKER_TIMEOUT_S
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                pytest.fail(f"worker {p.pid} ended early: {p.communicate()[1]}")
        time.sleep(0.5)
        try:  # the tables or the study may not exist yet
            storage = storage or make_storage(url)
            trials = load(storage).get_trials(deepcopy=False)
        except Exception:
            continue
        assert not [t.number for t in trials if t.state.name == "COMPLETE"]
        held = {
            t.user_attrs["pid"]: t.number
            for t in trials
            if t.state.name == "RUNNING" and "pid" in t.user_attrs
        }
        if set(held) == pids and held == last:
            break
        last = held
    return held


def test_three_workers_on_postgresql_evaluate_the_budget_exactly_once(
    pg_url: str, tmp_path: Path, digits_task: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = 6
    # No screening: every variant is measured, so every trial needs the host lock.
    recipe = write_recipe(tmp_path, trials=target, screen_examples=0)
    lock_dir = tmp_path / "lock"
    lock_dir.mkdir()
    env = worker_env(lock_dir)
    monkeypatch.setenv("COMPRESSLAB_LOCK_DIR", str(lock_dir))

    procs: list[subprocess.Popen[str]] = []
    try:
        with host_lock():
            # Started together on an empty database: they also race to create its tables.
            args = ["search", str(recipe), "--storage", pg_url]
            procs = [start(args, cwd=tmp_path, env=env) for _ in range(3)]
            pids = {p.pid for p in procs}
            held = wait_until_each_worker_holds_a_trial(pg_url, procs)
            assert set(held) == pids, f"each worker waits for the lock with a trial: {held}"
        results = finish(procs)
    finally:
        kill(procs)

    for rc, stdout, stderr in results:
        assert rc == 0, stderr
        assert "Traceback" not in stderr, stderr
        assert "RetryFailedTrialCallback" not in stderr, "no deprecated Optuna API"
        assert "Pareto frontier of small" in stdout
    study = load(pg_url)
    assert_fleet_invariants(study, target=target, pids=pids)
    ran_by = {t.user_attrs["pid"] for t in study.get_trials() if counts_towards_budget(t)}
    assert ran_by == pids, "each worker measured at least the variant it was holding"
    assert_report_rebuilt(recipe, pg_url, study, env)


def test_two_workers_share_a_journal_file_on_one_host(tmp_path: Path, digits_task: Any) -> None:
    target = 3
    recipe = write_recipe(tmp_path, trials=target)
    storage = f"journal:///{tmp_path / 'journal' / 'study.log'}"
    env = worker_env(tmp_path)
    procs = [start(["search", str(recipe), "--storage", storage], cwd=tmp_path, env=env)]
    procs.append(start(["search", str(recipe), "--storage", storage], cwd=tmp_path, env=env))
    results = finish(procs)
    for rc, _, stderr in results:
        assert rc == 0, stderr
        assert "Traceback" not in stderr
    assert (tmp_path / "journal" / "study.log").is_file()
    assert not (tmp_path / "reports" / "small" / "study.db").exists()
    study = load(storage)
    assert_fleet_invariants(study, target=target, pids={p.pid for p in procs})
    assert_report_rebuilt(recipe, storage, study, env=None)


def test_broken_storages_say_which_and_how_to_fix(tmp_path: Path, digits_task: Any) -> None:
    recipe = write_recipe(tmp_path, trials=2)
    corrupt = tmp_path / "reports" / "small" / "study.db"
    corrupt.parent.mkdir(parents=True)
    corrupt.write_bytes(b"this is not an SQLite database\n" * 100)
    env = worker_env(tmp_path)
    runs = {
        "corrupt": start(["search", str(recipe)], cwd=tmp_path, env=env),
        "scheme": start(
            ["search", str(recipe), "--storage", "mongodb://localhost/x"], cwd=tmp_path, env=env
        ),
    }
    # Meanwhile, in this process: a PostgreSQL URL whose port nothing listens on.
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/compresslab"
    with pytest.raises(StorageError) as info:
        search(load_recipe(recipe), storage=closed)
    assert info.value.exit_code == 1
    assert closed in str(info.value) and "reachable" in str(info.value)

    results = dict(zip(runs, finish(list(runs.values())), strict=True))
    for name, (_, _, stderr) in results.items():
        assert "Traceback" not in stderr, (name, stderr)
        assert stderr.count("error:") == 1, (name, stderr)

    rc, _, stderr = results["corrupt"]
    assert rc == 1
    message = " ".join(stderr.split())
    assert str(corrupt) in message and "is corrupt (it is not an SQLite database" in message
    assert "move it aside" in message
    assert corrupt.read_bytes().startswith(b"this is not"), "the corrupt file is left alone"

    rc, _, stderr = results["scheme"]
    assert rc == 2
    assert "mongodb://localhost/x" in stderr and "postgresql://" in stderr


def test_postgres_server_is_stopped_even_when_the_test_fails() -> None:
    port = 0
    with pytest.raises(RuntimeError, match="test failed"), postgres_server() as url:
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        raise RuntimeError("test failed")
    assert port
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
