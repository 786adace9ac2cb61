"""Facts about the host that every sampler and report records (no measurement here)."""

from __future__ import annotations

import os
import platform
import socket
from functools import cache
from pathlib import Path


@cache
def cpu_model() -> str:
    """The CPU model string from /proc/cpuinfo, or the platform's processor name."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def logical_cpus() -> int:
    """Logical CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def rss_bytes() -> int:
    """Resident set size of this process right now, in bytes."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):  # pragma: no cover - non-Linux
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def fingerprint() -> dict[str, str]:
    """A short description of the machine, stored with every study and baseline."""
    return {
        "host": socket.gethostname(),
        "cpu_model": cpu_model(),
        "logical_cpus": str(logical_cpus()),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
