"""A real, throw-away PostgreSQL server for the distributed-search tests.

:func:`postgres_server` runs Debian's ``initdb`` / ``pg_ctl`` on a temporary data folder, with
trust authentication on 127.0.0.1 only and a free port, creates a database, yields its URL
(``postgresql://postgres@127.0.0.1:PORT/compresslab``) and always stops the server and
removes the folder afterwards, even when the test failed.

PostgreSQL refuses to run as root. As root (CI, a fresh container) the server runs as the
unprivileged ``nobody`` via ``runuser``, on a folder handed over to it; as anyone else it runs
as that user. Without the server binaries or the Python driver that SQLAlchemy 2.1 uses for
``postgresql://`` URLs (psycopg 3: ``pip install 'psycopg[binary]'``), a test
that needs the server is skipped with the install command, except in CI (``CI=true``), where
it fails: there every test must run.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

#: The unprivileged account the server runs as when the tests run as root.
SERVER_USER = "nobody"
DATABASE = "compresslab"


def _missing(what: str, install: str) -> None:
    message = f"{what} is missing: install it with `{install}`"
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (CI=true: this test must run)")
    pytest.skip(message)


def pg_bin_dir() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl``: on PATH, else Debian's newest version."""
    found = shutil.which("initdb")
    if found:
        # Debian links initdb / pg_ctl into PATH from /usr/lib/postgresql/N/bin, where
        # createdb and postgres live too.
        bindir = Path(found).resolve().parent
        if (bindir / "pg_ctl").is_file() and (bindir / "createdb").is_file():
            return bindir
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(versions[-1]).parent if versions else None


def require_postgres() -> Path:
    """The server binaries' folder; skip (or fail in CI) without them or without a driver."""
    bindir = pg_bin_dir()
    if bindir is None:
        _missing("the PostgreSQL server (initdb, pg_ctl)", "apt-get install postgresql")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _missing("the PostgreSQL driver psycopg (3)", "pip install 'psycopg[binary]'")
    assert bindir is not None
    return bindir


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_server_user(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", SERVER_USER, "--", *cmd]


def _run(cmd: list[str], *, what: str, timeout: float = 120) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed ({proc.returncode}): {proc.stderr or proc.stdout}")


def _stop(bindir: Path, data: Path) -> None:
    """Stop the server now (immediate mode), else kill the postmaster named in its pid file."""
    with contextlib.suppress(Exception):
        subprocess.run(
            _as_server_user([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            capture_output=True,
            timeout=30,
        )
    pidfile = data / "postmaster.pid"
    with contextlib.suppress(Exception):
        if pidfile.is_file():
            os.kill(int(pidfile.read_text().split()[0]), signal.SIGKILL)


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Run a PostgreSQL server for the duration of the block; yield its database URL."""
    bindir = require_postgres()
    root = Path(tempfile.mkdtemp(prefix="compresslab-pg-"))
    data, sockets, logfile = root / "data", root / "run", root / "server.log"
    sockets.mkdir()
    if os.geteuid() == 0:
        user = pwd.getpwnam(SERVER_USER)
        for p in (root, sockets):
            os.chown(p, user.pw_uid, user.pw_gid)
    port = free_port()
    started = False
    try:
        _run(
            _as_server_user(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-sync",
                ]
            ),
            what="initdb",
        )
        options = (
            f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={sockets} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        started = True
        proc = subprocess.run(
            _as_server_user(
                [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(logfile), "-o", options]
                + ["-w", "-t", "60", "start"]
            ),
            capture_output=True,
            text=True,
            timeout=90,
        )
        if proc.returncode != 0:
            log = logfile.read_text() if logfile.is_file() else ""
            raise RuntimeError(f"pg_ctl start failed: {proc.stderr}\n{log}")
        createdb = [str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port)]
        _run([*createdb, "-U", "postgres", DATABASE], what="createdb")
        yield f"postgresql://postgres@127.0.0.1:{port}/{DATABASE}"
    finally:
        if started:
            _stop(bindir, data)
        shutil.rmtree(root, ignore_errors=True)


def wait_until(predicate: object, *, timeout_s: float, every_s: float = 0.2) -> bool:
    """Poll ``predicate()`` until it is true or ``timeout_s`` passed; return its last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():  # type: ignore[operator]
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(every_s)
