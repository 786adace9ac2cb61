"""A storage that fails says what happened and what to do, in one StorageError.

- A full SQLite disk (a real ``SQLITE_FULL``: the database may not grow) says the disk is full
  and to free space and run again; during a search too, with nothing completed lost.
- Deleting a study file is advised only when the file was checked and is corrupt; a locked
  database or a missing folder gets its own advice.
- A PostgreSQL server that accepts connections but never answers fails within the connect
  timeout, with a progress line on the way, naming the URL without its password.
"""

from __future__ import annotations

import logging
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine
from tests_support import small

import compresslab.study.storage_errors as storage_errors
from compresslab.api import load_recipe, search
from compresslab.errors import StorageError
from compresslab.study import delete_study, make_storage, open_study
from compresslab.study.storage_errors import redact, sqlite_corruption

DELETE_ADVICE = ("move it aside", "remove", "rename it")


@pytest.fixture
def sqlite_cannot_grow() -> Iterator[dict[str, int]]:
    """Every new SQLite connection may not grow its file past ``limit["pages"]`` pages.

    SQLite then fails a write that needs a new page with its real "database or disk is full".
    """
    limit = {"pages": 1_000_000}

    def cap(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute(f"PRAGMA max_page_count = {limit['pages']}")

    event.listen(Engine, "connect", cap)
    try:
        yield limit
    finally:
        event.remove(Engine, "connect", cap)


def test_a_full_sqlite_disk_says_so_on_open_and_delete(
    tmp_path: Path, sqlite_cannot_grow: dict[str, int]
) -> None:
    recipe = load_recipe(small(tmp_path))
    url = f"sqlite:///{tmp_path / 'study.db'}"
    sqlite_cannot_grow["pages"] = 2  # not even the tables fit
    for call in (open_study, delete_study):
        with pytest.raises(StorageError) as caught:
            call(recipe, storage=url)
        message = str(caught.value)
        assert url in message and "the disk holding it is full" in message
        assert "free space there and run the same command again" in message
        assert not any(advice in message for advice in DELETE_ADVICE), message


@pytest.mark.slow
def test_a_disk_that_fills_up_during_a_search_keeps_what_was_completed(
    tmp_path: Path, sqlite_cannot_grow: dict[str, int], digits_task: Any
) -> None:
    recipe = load_recipe(small(tmp_path, search={"trials": 1, "sampler": "random", "seed": 1}))
    search(recipe)
    db = recipe.output_dir() / "study.db"
    url = f"sqlite:///{db}"

    def stored() -> dict[int, Any]:
        study = optuna.load_study(study_name="small", storage=make_storage(url))
        return {t.number: t.values for t in study.get_trials() if t.state.name == "COMPLETE"}

    before = stored()
    with sqlite3.connect(db) as con:
        sqlite_cannot_grow["pages"] = con.execute("PRAGMA page_count").fetchone()[0]
    with pytest.raises(StorageError) as caught:
        search(recipe, trials=3)
    message = str(caught.value)
    assert url in message and "is full" in message and "run the same command again" in message
    assert not any(advice in message for advice in DELETE_ADVICE), message

    sqlite_cannot_grow["pages"] = 1_000_000  # space freed: the same search goes on
    result = search(recipe, trials=2)
    assert sum(t.evaluated for t in result.trials) == 2
    after = stored()
    assert {n: after[n] for n in before} == before, "what was completed is kept as it was"
    # A trial cut short by the full disk was interrupted, not the variant's fault: retried.
    trials = optuna.load_study(study_name="small", storage=make_storage(url)).get_trials()
    for t in trials:
        if t.state.name == "FAIL":
            assert t.user_attrs.get("error", "interrupted").startswith("interrupted"), t
            assert any(r.user_attrs.get("retry_of") == t.number for r in trials)


def test_only_a_file_checked_corrupt_is_called_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = load_recipe(small(tmp_path))
    # Not an SQLite file: checked, so the message says to move it aside.
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not an SQLite database\n" * 100)
    assert sqlite_corruption(junk) and sqlite_corruption(junk).startswith("it is not an SQLite")
    with pytest.raises(StorageError) as caught:
        open_study(recipe, storage=f"sqlite:///{junk}")
    assert f"{junk} is corrupt" in str(caught.value) and "move it aside" in str(caught.value)
    assert junk.read_bytes().startswith(b"this is not"), "the file is left alone"

    # A sound database that another process holds locked: wait or stop it, never delete.
    good = tmp_path / "good.db"
    open_study(recipe, storage=f"sqlite:///{good}")
    assert sqlite_corruption(good) is None
    monkeypatch.setattr(storage_errors, "SQLITE_BUSY_S", 0.2)
    holder = sqlite3.connect(good)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StorageError) as caught:
            delete_study(recipe, storage=f"sqlite:///{good}")
    finally:
        holder.rollback()
        holder.close()
    message = str(caught.value)
    assert "another process held its write lock" in message
    assert not any(advice in message for advice in DELETE_ADVICE), message

    # A folder that does not exist: said so, nothing to delete.
    missing = tmp_path / "no-such-folder" / "study.db"
    with pytest.raises(StorageError) as caught:
        open_study(recipe, storage=f"sqlite:///{missing}")
    message = str(caught.value)
    assert "check that its folder exists" in message
    assert not any(advice in message for advice in DELETE_ADVICE), message


@pytest.fixture
def hung_server() -> Iterator[int]:
    """A TCP port that accepts connections and never answers (a hung database server)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        thread.join()
        for s in held:
            s.close()
        server.close()


@pytest.mark.slow
def test_a_hung_postgresql_server_fails_in_bounded_time_without_showing_the_password(
    tmp_path: Path,
    hung_server: int,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pytest.importorskip("psycopg")
    import compresslab.study.storage as storage_module

    monkeypatch.setattr(storage_errors, "CONNECT_TIMEOUT_S", 2)
    monkeypatch.setattr(storage_module, "_SLOW_CONNECT_S", 0.5)
    url = f"postgresql://lab:s3cret-pw@127.0.0.1:{hung_server}/studies"
    shown = f"postgresql://lab:***@127.0.0.1:{hung_server}/studies"
    assert redact(url) == shown
    recipe = load_recipe(small(tmp_path))
    t0 = time.monotonic()
    with caplog.at_level(logging.INFO, logger="compresslab"), pytest.raises(StorageError) as caught:
        open_study(recipe, storage=url)
    assert time.monotonic() - t0 < 10
    message = str(caught.value)
    assert shown in message and "did not answer within 2 s" in message
    progress = [r.getMessage() for r in caplog.records]
    assert f"still connecting to {shown} (gives up after 2 s)" in progress
    assert not any("s3cret" in line for line in [message, *progress])
