"""The one way compresslab writes a file: atomically, so a kill never leaves half of one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(
    path: Path, write: Callable[[Path], object], *, mode: int | None = None, fsync: bool = True
) -> Path:
    """Write ``path`` through ``write(tmp)`` into a temporary file beside it, then rename it.

    The temporary file is in the same folder (so the rename is atomic), flushed to disk before
    the rename when ``fsync`` is set, and removed when ``write`` fails. The file gets ``mode``,
    or the usual ``0666 & ~umask`` of a new file (``mkstemp``'s 0600 would hide a shared report
    or export from the rest of a team).

    Returns:
        ``path``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # The real suffix last: writers such as matplotlib pick the format from it.
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.chmod(tmp, mode if mode is not None else 0o666 & ~_umask())
        if fsync:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def atomic_write_text(path: Path, text: str, *, mode: int | None = None) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"), mode=mode)
