"""A journal file storage survives a write cut short (a full disk, a kill in mid-write).

- A torn last record (half a JSON line) is cut off when the study is opened, its bytes kept in
  ``<journal>.torn-<time>`` and a warning logged; every whole trial reads back, and the next
  records append cleanly (plain Optuna reads the file afterwards).
- A write that fails (ENOSPC) raises a StorageError that says the disk is full and what to do,
  and leaves no torn bytes behind.
- A bad record in the middle (not a torn tail) is reported with its line, never "repaired".
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from tests_support import small

import compresslab.study.journal as journal_module
from compresslab.api import load_recipe
from compresslab.errors import StorageError
from compresslab.study import open_study

DIRECTIONS = ["maximize", "minimize"]


def plain_study(path: Path) -> Any:
    """The journal's study "small" as Optuna alone reads it."""
    storage = JournalStorage(JournalFileBackend(str(path)))
    return optuna.load_study(study_name="small", storage=storage)


def journal_with_trials(path: Path, n: int) -> None:
    """A journal written by Optuna alone: study "small" with ``n`` complete trials."""
    storage = JournalStorage(JournalFileBackend(str(path)))
    study = optuna.create_study(study_name="small", storage=storage, directions=DIRECTIONS)
    for i in range(n):
        trial = study.ask()
        trial.suggest_float("ratio", 0.0, 1.0)
        study.tell(trial, [0.9 - i / 100, 1.0 - i / 10])


def test_a_torn_last_record_is_cut_off_and_kept_and_the_study_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "study.log"
    journal_with_trials(path, 3)
    whole = path.read_bytes()
    last = whole.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    torn = last[: len(last) // 2]  # a record cut short: half a line, no newline
    with open(path, "ab") as fh:
        fh.write(torn)

    recipe = load_recipe(small(tmp_path))
    with caplog.at_level(logging.WARNING, logger="compresslab"):
        study = open_study(recipe, storage=f"journal:///{path}")
    assert [t.state.name for t in study.get_trials()] == ["COMPLETE"] * 3
    [backup] = tmp_path.glob("study.log.torn-*")
    assert backup.read_bytes() == torn
    assert path.read_bytes().startswith(whole)
    [warning] = [r.getMessage() for r in caplog.records if "torn record" in r.getMessage()]
    assert str(path) in warning and str(backup) in warning

    # The next writes append cleanly: a new trial, read back by Optuna alone.
    trial = study.ask()
    trial.suggest_float("ratio", 0.0, 1.0)
    study.tell(trial, [0.5, 0.5])
    again = plain_study(path)
    assert [t.state.name for t in again.get_trials()] == ["COMPLETE"] * 4
    assert again.metric_names == ["accuracy", "energy_ratio_vs_baseline"]

    # A whole journal is left alone.
    open_study(recipe, storage=f"journal:///{path}")
    assert len(list(tmp_path.glob("study.log.torn-*"))) == 1


def test_a_full_disk_during_a_write_is_a_storage_error_and_leaves_no_torn_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "study.log"
    recipe = load_recipe(small(tmp_path))
    study = open_study(recipe, storage=f"journal:///{path}")
    for value in (0.9, 0.8):
        study.tell(study.ask(), [value, value])
    before = path.read_bytes()
    inode = os.stat(path).st_ino
    real_write = os.write

    def disk_fills_up(fd: int, data: Any) -> int:
        """The journal's disk takes a few bytes of the record, then is full."""
        if os.fstat(fd).st_ino != inode:
            return real_write(fd, data)
        if len(data) > 10:
            return real_write(fd, bytes(data[:10]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(journal_module.os, "write", disk_fills_up)
    with pytest.raises(StorageError) as caught:
        study.tell(study.ask(), [0.7, 0.7])
    message = str(caught.value)
    assert str(path) in message and "is full" in message and "free space" in message
    assert "run the same command again" in message
    assert path.read_bytes() == before, "the cut-short write was rolled back"

    monkeypatch.undo()  # space is free again: the same study goes on
    study.tell(study.ask(), [0.6, 0.6])
    assert [t.values[0] for t in plain_study(path).get_trials() if t.values] == [0.9, 0.8, 0.6]


def test_a_bad_record_in_the_middle_is_reported_with_its_line_not_cut(tmp_path: Path) -> None:
    path = tmp_path / "study.log"
    journal_with_trials(path, 2)
    lines = path.read_bytes().splitlines(keepends=True)
    # What an older writer left: a torn record, then more records glued after it.
    lines[2] = lines[2][:20] + lines[3]
    path.write_bytes(b"".join(lines))
    before = path.read_bytes()

    with pytest.raises(StorageError) as caught:
        open_study(load_recipe(small(tmp_path)), storage=f"journal:///{path}")
    message = str(caught.value)
    assert "record 3 of" in message and str(path) in message and "cut line 3 out" in message
    assert path.read_bytes() == before
    assert not list(tmp_path.glob("study.log.torn-*"))
