"""What else ran on the machine during a measurement window (Linux ``/proc/stat``).

A process-scoped estimate is distorted by contention (threads that wait for a descheduled
partner, caches and memory bandwidth shared with others); a machine-scoped counter (RAPL, NVML)
counts the other processes' energy outright. Each window therefore records:

- ``foreign_cpus``: CPUs kept busy by other processes, on average (system-wide busy time minus
  this process's CPU time, over the window's wall time);
- ``steal_frac``: the share of the machine's CPU time taken by the hypervisor (a virtual
  machine's neighbours);
- ``load_1m``: the 1-minute load average at the end of the window.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

_STAT = Path("/proc/stat")


@dataclass(frozen=True)
class CpuSnapshot:
    """System-wide and process CPU time at one instant."""

    busy_s: float
    steal_s: float
    process_s: float
    wall_s: float


@dataclass(frozen=True)
class Contention:
    """Other processes' use of the machine over one window (see the module docstring)."""

    foreign_cpus: float
    steal_frac: float
    load_1m: float

    def to_dict(self) -> dict[str, float]:
        """JSON-able form."""
        return asdict(self)


def _ticks_per_s() -> float:
    try:
        return float(os.sysconf("SC_CLK_TCK"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 100.0


def snapshot(stat: Path = _STAT) -> CpuSnapshot | None:
    """Read the machine's CPU time now, or None where ``/proc/stat`` cannot be read."""
    try:
        first = stat.read_text(encoding="ascii").splitlines()[0].split()
    except (OSError, IndexError, UnicodeDecodeError):
        return None
    if not first or first[0] != "cpu":
        return None
    # user nice system idle iowait irq softirq steal (guest time is already inside user)
    ticks = [int(v) for v in first[1:9]] + [0] * max(0, 9 - len(first))
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks[:8]
    hz = _ticks_per_s()
    return CpuSnapshot(
        busy_s=(user + nice + system + irq + softirq) / hz,
        steal_s=steal / hz,
        process_s=time.process_time(),
        wall_s=time.perf_counter(),
    )


def between(start: CpuSnapshot | None, end: CpuSnapshot | None, *, cpus: int) -> Contention | None:
    """The contention between two snapshots (None when either is missing)."""
    if start is None or end is None:
        return None
    wall = end.wall_s - start.wall_s
    if wall <= 0:
        return None
    foreign = (end.busy_s - start.busy_s) - (end.process_s - start.process_s)
    steal = end.steal_s - start.steal_s
    try:
        load = os.getloadavg()[0]
    except OSError:  # pragma: no cover - no load average
        load = float("nan")
    # CPU time is counted in ticks: a few ticks either way is rounding, never negative load.
    return Contention(
        foreign_cpus=max(0.0, foreign / wall),
        steal_frac=max(0.0, min(1.0, steal / (wall * max(cpus, 1)))),
        load_1m=load,
    )
