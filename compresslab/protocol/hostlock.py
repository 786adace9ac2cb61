"""The host-wide measurement lock: measuring is exclusive, other heavy work is shared.

Machine-level counters count every process, so on one host no two measurements may overlap,
and no other worker of the lab may build, fine-tune or evaluate a variant while one measures:
that work would be charged to the variant being measured. Measuring holds the lock
exclusively; building and evaluating hold it shared (several at once, never during a
measurement). A turnstile keeps a waiting measurement from being starved by a stream of
shared holders: once a measurement waits, new shared holders queue behind it.

The lock files live in ``$COMPRESSLAB_LOCK_DIR`` (default: the temp dir), so workers in
containers on one host share them when that folder is shared.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def lock_dir() -> Path:
    """``$COMPRESSLAB_LOCK_DIR``, else the temp dir."""
    return Path(os.environ.get("COMPRESSLAB_LOCK_DIR") or tempfile.gettempdir())


@contextlib.contextmanager
def _flock(path: Path, mode: int) -> Iterator[None]:
    with open(path, "a+") as fh:
        fcntl.flock(fh, mode)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def host_lock(*, exclusive: bool = True) -> Iterator[None]:
    """Hold the host lock: exclusively to measure, shared for work that must not overlap one.

    Not re-entrant: a process must not take it again while holding it.
    """
    base = lock_dir()
    main = base / "compresslab-measure.lock"
    turnstile = base / "compresslab-measure.turnstile"
    with contextlib.ExitStack() as stack:
        with _flock(turnstile, fcntl.LOCK_EX):
            stack.enter_context(_flock(main, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH))
        yield
