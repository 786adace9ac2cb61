"""One translation of a study storage's failures into :class:`StorageError`: what, and what to do.

SQLAlchemy, its database drivers and Optuna raise many kinds for one cause (Optuna wraps a
failed commit in ``StorageInternalError``; SQLAlchemy wraps the driver's error); the cause is
found along the exception's chain. A message never suggests deleting a study's file unless the
file was checked and is corrupt (not an SQLite file, ``PRAGMA integrity_check`` fails, or a
journal record in the middle is not JSON).
"""

from __future__ import annotations

import errno
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from compresslab.errors import StorageError
from compresslab.study.journal import first_bad_record, write_error

#: Seconds a connection to a PostgreSQL server may take before it is given up.
CONNECT_TIMEOUT_S = 10
#: Seconds an SQLite write waits for another process's write lock.
SQLITE_BUSY_S = 30

_SQLITE_MAGIC = b"SQLite format 3\x00"


_PASSWORD = re.compile(r"^([a-z0-9+]+://[^/@:]*:)([^@/]*)@", re.IGNORECASE)


def redact(url: str) -> str:
    """``url`` with its password, if any, shown as ``***``."""
    return _PASSWORD.sub(r"\1***@", url)


def _hide_password(text: str, url: str) -> str:
    match = _PASSWORD.match(url)
    return text.replace(match.group(2), "***") if match and match.group(2) else text


def sqlite_path(url: str) -> Path | None:
    """The file of an ``sqlite:///path`` URL (None for another scheme)."""
    if not url.startswith("sqlite:///"):
        return None
    return Path(url.removeprefix("sqlite:///").split("?", 1)[0])


def journal_path(url: str) -> Path | None:
    """The file of a ``journal:///path`` or ``journal:path`` URL (None for another scheme)."""
    if not url.startswith("journal:"):
        return None
    path = url.removeprefix("journal:")
    return Path(path.removeprefix("//") if path.startswith("///") else path)


def sqlite_corruption(path: Path) -> str | None:
    """Why ``path`` is a corrupt SQLite database, or None when it is sound (or absent)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(_SQLITE_MAGIC))
    except OSError:
        return None
    if not head:
        return None  # an empty file: SQLite makes it a database
    if head != _SQLITE_MAGIC:
        return "it is not an SQLite database: its first bytes are not SQLite's header"
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=SQLITE_BUSY_S)
        try:
            rows = [str(r[0]) for r in con.execute("PRAGMA integrity_check").fetchall()]
        finally:
            con.close()
    except sqlite3.DatabaseError as e:
        if "locked" in str(e):
            return None
        return f"SQLite cannot read it ({e})"
    if rows != ["ok"]:
        return "PRAGMA integrity_check reports: " + "; ".join(rows[:3])
    return None


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The error, its causes and contexts, and SQLAlchemy's wrapped driver errors."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [error]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen or len(seen) > 20:
            continue
        seen.add(id(e))
        yield e
        orig = getattr(e, "orig", None)
        todo += [e.__cause__, e.__context__, orig if isinstance(orig, BaseException) else None]


@dataclass(frozen=True)
class _Failure:
    """What :func:`storage_error` knows of one failure, read once for every check."""

    chain: list[BaseException]
    text: str  # every error of the chain, lower case
    first: str  # the innermost error, one line, without the password
    where: str  # "cannot <doing> the study storage <url>"
    db: Path | None
    journal: Path | None


def storage_error(error: BaseException, *, storage: str, doing: str = "open") -> StorageError:
    """The :class:`StorageError` that says what ``error`` means for ``storage``, and the fix.

    Args:
        error: what SQLAlchemy, a driver, Optuna or the file system raised.
        storage: the storage URL (its password is never shown).
        doing: what was being done, e.g. ``open`` or ``delete study 'digits' from``.
    """
    chain = list(_chain(error))
    for e in chain:
        if isinstance(e, StorageError):
            return e
    # The innermost error says most (Optuna's StorageInternalError says "commit failed").
    wrapped = type(error).__name__ == "StorageInternalError" and error.__cause__ is not None
    cause = error.__cause__ if wrapped and error.__cause__ is not None else error
    failure = _Failure(
        chain=chain,
        text=" | ".join(str(e) for e in chain).lower(),
        first=_hide_password(f"{type(cause).__name__}: {' '.join(str(cause).split())}", storage),
        where=f"cannot {doing} the study storage {redact(storage)}",
        db=sqlite_path(storage),
        journal=journal_path(storage),
    )
    for check in (_missing_driver, _disk_full, _sqlite_problem, _bad_journal, _server_problem):
        found = check(failure)
        if found is not None:
            return found
    return StorageError(
        f"{failure.where} ({failure.first}): check the URL, that the server runs and that the "
        "database is reachable from this host"
    )


def _missing_driver(f: _Failure) -> StorageError | None:
    """A database driver that is not installed."""
    if not any(isinstance(e, ImportError) for e in f.chain):
        return None
    return StorageError(
        f"{f.where}: its database driver is not installed ({f.first}): "
        "`pip install 'psycopg[binary]'` for postgresql:// (see docs/fleet.md)"
    )


def _disk_full(f: _Failure) -> StorageError | None:
    """A full disk (or quota): the journal's own message, else the database's."""
    for e in f.chain:
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT) and f.journal:
            return write_error(f.journal, e)
    full = ("database or disk is full", "no space left on device", "disk quota exceeded")
    if not any(x in f.text for x in full) and not any(
        isinstance(e, OSError)
        and e.errno in (errno.ENOSPC, errno.EDQUOT)
        or type(e).__name__ == "DiskFull"  # PostgreSQL's SQLSTATE 53100
        for e in f.chain
    ):
        return None
    return StorageError(
        f"{f.where}: the disk holding it is full ({f.first}): free space there and run the "
        "same command again; the database rolled back the unfinished write, so every trial "
        "recorded so far is kept"
    )


def _sqlite_problem(f: _Failure) -> StorageError | None:
    """An SQLite file held locked by another process, corrupt, or not writable."""
    db = f.db
    if db is None:
        return None
    if "database is locked" in f.text:
        return StorageError(
            f"{f.where}: another process held its write lock for over {SQLITE_BUSY_S} s "
            f"({f.first}): let it finish, or stop a stuck one, then run the same command again"
        )
    corrupt = sqlite_corruption(db)
    if corrupt:
        return StorageError(
            f"{f.where}: {db} is corrupt ({corrupt}): move it aside (e.g. rename it to "
            f"{db.name}.corrupt) and run the same command again to start a new study; the "
            "trials in it cannot be read"
        )
    if "readonly" in f.text or "unable to open" in f.text:
        return StorageError(
            f"{f.where}: SQLite cannot open {db} for writing ({f.first}): check that its folder "
            "exists and that you may write to the file and the folder"
        )
    return None


def _bad_journal(f: _Failure) -> StorageError | None:
    """A journal file with a broken record in the middle."""
    if f.journal is None or not f.journal.is_file():
        return None
    line = first_bad_record(f.journal)
    if line is None:
        return None
    return StorageError(
        f"{f.where}: record {line} of {f.journal} is not whole JSON (written by another "
        "tool, or by an older compresslab after a failed write), and records follow it: "
        f"keep a copy of the file, then either cut line {line} out of it, or move the "
        "file aside and run the same command again to start a new study (its trials "
        "are lost)"
    )


def _server_problem(f: _Failure) -> StorageError | None:
    """A database server that does not answer, or refuses the user."""
    if "timeout expired" in f.text or "timed out" in f.text:
        return StorageError(
            f"{f.where}: the server did not answer within {CONNECT_TIMEOUT_S} s ({f.first}): "
            "check that it runs and is not overloaded, and that no firewall drops the packets"
        )
    if "password authentication failed" in f.text or "authentication" in f.text:
        return StorageError(
            f"{f.where}: the server refused the user or password ({f.first}): check the user "
            "in the URL and the password in ~/.pgpass (see docs/fleet.md)"
        )
    return None


def is_storage_failure(error: BaseException) -> bool:
    """Whether ``error`` is the storage's failure rather than a variant's (a trial's) own."""
    for e in _chain(error):
        if isinstance(e, StorageError):
            return True
        module = type(e).__module__
        if module.startswith(("sqlalchemy", "sqlite3", "psycopg")):
            return True
        if type(e).__name__ == "StorageInternalError":
            return True
    return False
