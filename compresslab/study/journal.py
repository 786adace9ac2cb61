"""The journal file storage, safe against torn writes (a full disk, a kill in mid-write).

Optuna's journal is one JSON record per line, appended under a lock file. A write cut short
leaves half a line at the end; Optuna skips it when reading, but the next record is appended
right after it, and the glued line then breaks every later read (``JSONDecodeError``). So:

- a write that fails is rolled back to the last whole record and raises :class:`StorageError`
  (for a full disk: free space and run the command again);
- opening a journal whose last record is torn (a writer killed in mid-write, or one of an older
  version) cuts that record off, keeps its bytes in ``<journal>.torn-<time>`` beside it and
  logs a warning: the study reads as it was before that write, and new records append cleanly.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from compresslab.errors import StorageError
from compresslab.fsio import atomic_write

log = logging.getLogger(__name__)

_CHUNK = 1 << 16
#: errno values that mean "no room left" (a full disk, a full quota).
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def write_error(path: str | Path, error: OSError) -> StorageError:
    """The error of a journal write that failed (and was rolled back)."""
    what = error.strerror or str(error)
    if error.errno in _NO_SPACE:
        return StorageError(
            f"the disk holding the journal {path} is full ({what}): free space there and run the "
            "same command again; the unfinished write was rolled back, so the journal keeps "
            "every trial recorded so far"
        )
    return StorageError(
        f"cannot write the journal {path} ({what}): check that its folder is writable and its "
        "disk healthy, then run the same command again; the unfinished write was rolled back"
    )


def _last_record(path: Path) -> tuple[int, bytes]:
    """The offset and bytes of the file's last record (with its newline, if it has one)."""
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return 0, b""
        f.seek(size - 1)
        end = size - 1 if f.read(1) == b"\n" else size
        start = 0
        while end > 0:
            low = max(0, end - _CHUNK)
            f.seek(low)
            newline = f.read(end - low).rfind(b"\n")
            if newline >= 0:
                start = low + newline + 1
                break
            end = low
        f.seek(start)
        return start, f.read(size - start)


def _whole(record: bytes) -> bool:
    if not record:
        return True
    if not record.endswith(b"\n"):
        return False
    try:
        json.loads(record)
    except ValueError:
        return False
    return True


def repair_torn_tail(path: str | Path) -> Path | None:
    """Cut a torn last record off a journal file; the path of the copy of its bytes, or None.

    Holds the journal's own lock file meanwhile, so no worker is in mid-write.

    Raises:
        StorageError: the copy of the torn bytes cannot be written (a full disk).
    """
    from optuna.storages.journal import JournalFileSymlinkLock

    p = Path(path)
    if not p.is_file() or _whole(_last_record(p)[1]):
        return None
    lock = JournalFileSymlinkLock(str(p))
    lock.acquire()
    try:
        start, record = _last_record(p)
        if _whole(record):
            return None  # a worker was writing it: whole now
        stamp = time.strftime("%Y%m%dT%H%M%S")
        backup = p.with_name(f"{p.name}.torn-{stamp}-{os.getpid()}")
        try:
            atomic_write(backup, lambda tmp: tmp.write_bytes(record))
            with open(p, "r+b") as f:
                f.truncate(start)
                os.fsync(f.fileno())
        except OSError as e:
            raise StorageError(
                f"the journal {p} ends in a torn record ({len(record)} bytes) that cannot be "
                f"cut off, because {backup} (a copy of it) cannot be written "
                f"({e.strerror or e}): free space on that disk and run the same command again"
            ) from e
    finally:
        lock.release()
    log.warning(
        "the journal %s ended in a torn record (%d bytes: a write cut short by a full disk or a "
        "kill); cut it off, so the study reads as before that write, and kept its bytes in %s",
        p,
        len(record),
        backup,
    )
    return backup


def _safe_backend_class() -> type:
    from optuna.storages.journal import JournalFileBackend

    class SafeJournalFileBackend(JournalFileBackend):
        """Optuna's file backend whose failed write is rolled back, never left torn."""

        def append_logs(self, logs: list[dict[str, Any]]) -> None:
            data = "".join(json.dumps(x, separators=(",", ":")) + "\n" for x in logs).encode()
            self._lock.acquire()
            try:
                fd = os.open(self._file_path, os.O_WRONLY | os.O_APPEND)
                try:
                    start = os.fstat(fd).st_size
                    try:
                        view = memoryview(data)
                        while view:
                            view = view[os.write(fd, view) :]
                        os.fsync(fd)
                    except OSError as e:
                        try:
                            os.ftruncate(fd, start)
                            os.fsync(fd)
                        except OSError:
                            log.debug("could not roll back %s", self._file_path, exc_info=True)
                        raise write_error(self._file_path, e) from e
                finally:
                    os.close(fd)
            finally:
                self._lock.release()

    return SafeJournalFileBackend


_BACKEND: type | None = None


def journal_storage(path: str | Path) -> Any:
    """An Optuna ``JournalStorage`` on ``path`` (created with its folder), its tail repaired."""
    global _BACKEND
    from optuna.storages import JournalStorage

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    repair_torn_tail(p)
    if _BACKEND is None:
        _BACKEND = _safe_backend_class()
    return JournalStorage(_BACKEND(str(p)))


def first_bad_record(path: str | Path) -> int | None:
    """The line number (from 1) of the journal's first record that is not whole JSON, or None."""
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            if not _whole(line):
                return number
    return None
