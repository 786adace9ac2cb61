"""Fake samplers and a scripted /proc/stat for the protocol's tests."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from typing import Any

from compresslab.energy import Availability, ComponentEnergy, Provenance, Reading
from compresslab.protocol import contention


class CostSampler:
    """A process-level counter: every call of a registered workload costs its joules."""

    name = "cost"
    provenance = Provenance.MEASURED
    scope = "process"

    def __init__(self, window_factor: Callable[[int], float] | None = None) -> None:
        self.joules = 0.0
        self.log: list[str] = []
        self._start = (0.0, 0.0)
        self.window_factor = window_factor
        self.windows = 0
        self.factor = 1.0

    def workload(self, label: str, j_per_call: float, *, scaled: bool = False):  # type: ignore[no-untyped-def]
        """A callable that adds ``j_per_call`` per call (times the window's factor if scaled).

        The factor is set per window (``window_factor(window number)``), so a change of load
        can be placed exactly between two pairs of windows.
        """

        def run() -> None:
            factor = self.factor if scaled else 1.0
            self.joules += j_per_call * factor
            if not self.log or self.log[-1] != label:
                self.log.append(label)
            time.sleep(0.0005)

        return run

    def available(self) -> Availability:
        return Availability(True, "fake")

    def update_period_s(self) -> float:
        return 0.001

    def start(self) -> None:
        self.windows += 1
        if self.window_factor is not None:
            self.factor = self.window_factor(self.windows)
        self._start = (self.joules, time.perf_counter())

    def stop(self) -> Reading:
        j0, t0 = self._start
        return Reading(
            duration_s=time.perf_counter() - t0,
            components=(ComponentEnergy("cpu", self.joules - j0, Provenance.MEASURED),),
        )

    def metadata(self) -> dict[str, str]:
        return {"covers": "a fake counter"}


class NoisyMachine:
    """A machine-level counter at constant idle power with noise, plus joules per call."""

    name = "noisy-machine"
    provenance = Provenance.MEASURED
    scope = "machine"

    def __init__(self, *, idle_w: float, j_per_call: float, noise_rel: float, seed: int = 0):
        self.idle_w = idle_w
        self.j_per_call = j_per_call
        self.noise_rel = noise_rel
        self.calls = 0
        self._rng = random.Random(seed)
        self._start = (0, 0.0)

    def work(self) -> None:
        self.calls += 1
        time.sleep(0.0005)

    def available(self) -> Availability:
        return Availability(True, "fake")

    def update_period_s(self) -> float:
        return 0.001

    def start(self) -> None:
        self._start = (self.calls, time.perf_counter())

    def stop(self) -> Reading:
        c0, t0 = self._start
        duration = time.perf_counter() - t0
        idle = self.idle_w * duration * (1 + self._rng.gauss(0, self.noise_rel))
        joules = max(idle, 0.0) + (self.calls - c0) * self.j_per_call
        return Reading(duration, (ComponentEnergy("package-0", joules, Provenance.MEASURED),))

    def metadata(self) -> dict[str, str]:
        return {"covers": "a fake machine"}


def script_contention(monkeypatch: Any, foreign_cpus: Iterator[float]) -> None:
    """Make every window see the next ``foreign_cpus`` value of other processes' CPU use."""
    state = {"busy": 0.0}

    def snapshot(*_a: Any, **_k: Any) -> contention.CpuSnapshot:
        now = time.perf_counter()
        return contention.CpuSnapshot(busy_s=state["busy"], steal_s=0.0, process_s=0.0, wall_s=now)

    def between(start: Any, end: Any, *, cpus: int) -> contention.Contention:
        return contention.Contention(foreign_cpus=next(foreign_cpus), steal_frac=0.0, load_1m=1.0)

    monkeypatch.setattr(contention, "snapshot", snapshot)
    monkeypatch.setattr(contention, "between", between)
