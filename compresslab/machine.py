"""Facts about the host that every sampler, method and report records (no measurement here)."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import sys
from collections.abc import Mapping
from functools import cache
from pathlib import Path

#: CPU flags (``/proc/cpuinfo`` names) that decide which int8 and bf16 kernels are fast.
CPU_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, bool] | None:
    """The relevant CPU flags, or None where ``cpuinfo`` cannot be read (not Linux)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            present = set(value.split())
            return {f: f in present for f in CPU_FLAGS}
    return None


@cache
def cpu_model() -> str:
    """The CPU model string from /proc/cpuinfo, or the platform's processor name."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            return value.strip()
    return platform.processor() or platform.machine() or "unknown CPU"


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


#: The fingerprint fields that name a machine (software versions may change under it).
MACHINE_KEYS = ("host", "cpu_model", "logical_cpus")


def machine_id(machine: Mapping[str, str] | None = None) -> str:
    """A short id of a machine (:data:`MACHINE_KEYS` of its fingerprint; default: this one).

    What is learnt on one machine (a calibration, a repeatability term) is stored under it and
    never used on another without saying so.
    """
    fp = machine if machine is not None else fingerprint()
    text = json.dumps({k: fp.get(k) for k in MACHINE_KEYS}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def describe_machine(machine: Mapping[str, str]) -> str:
    """A machine in words, e.g. ``vm (Intel(R) Xeon(R) Processor, 2 CPUs)``."""
    return (
        f"{machine.get('host', '?')} ({machine.get('cpu_model', '?')}, "
        f"{machine.get('logical_cpus', '?')} CPUs)"
    )


#: What :func:`prefer_passive_omp_wait` found when the package was imported.
_OMP_STATE = {"set_by_compresslab": False, "torch_loaded_first": False}


def prefer_passive_omp_wait() -> None:
    """Ask OpenMP to let waiting threads sleep (``OMP_WAIT_POLICY=PASSIVE``) unless set.

    With the default active policy a thread that waits for a descheduled partner spins, and
    the spin is billed as busy CPU time: on a shared machine estimated energy then varies by
    tens of percent between runs. OpenMP reads the variable when torch loads it, so this only
    works before ``import torch``; :func:`omp_wait_policy` says whether it did.
    """
    if "OMP_WAIT_POLICY" in os.environ:
        return
    if "torch" in sys.modules:
        _OMP_STATE["torch_loaded_first"] = True
        return
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    _OMP_STATE["set_by_compresslab"] = True


def omp_wait_policy() -> str:
    """How OpenMP threads wait in this process, in words (recorded with every measurement)."""
    value = os.environ.get("OMP_WAIT_POLICY")
    if _OMP_STATE["set_by_compresslab"]:
        return f"{value} (set by compresslab before torch loaded)"
    if _OMP_STATE["torch_loaded_first"]:
        return (
            "OpenMP default, probably active (torch was imported before compresslab: set "
            "OMP_WAIT_POLICY=PASSIVE before importing torch for steadier estimates)"
        )
    return f"{value} (set in the environment)" if value else "OpenMP default"
