"""Faithful fakes of the hardware interfaces the energy samplers read.

- :class:`PowercapTree`: a real temporary sysfs-like tree of ``intel-rapl*`` zones with
  ``name``, ``energy_uj``, ``max_energy_range_uj`` and (on request) ``constraint_0_max_power_uw``
  files, and helpers to move the counters. Its static counters move only when a test moves
  them, so the sampler's "is it frozen?" probe is told they are live
  (``tree.static_counters_live = False`` lets the real probe see them as they are).
- :class:`ClockCounter`: a counter driven by the clock, like the hardware: it gains
  ``power_w`` every update period and wraps at its range; it can be reset, torn, frozen or
  slow. ``clock_counters.attach(tree, zone, ...)`` makes every read of that zone's
  ``energy_uj`` go to it.
- :class:`FakeNvml`: a stand-in for the ``pynvml`` module with the same function names,
  constants and error classes; energy counters come from ``itertools.count``.
"""

from __future__ import annotations

import itertools
import math
import os
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from compresslab.energy import cuda, nvml_library, rapl_counter, rapl_tree

#: The range most Intel packages report (about 262 kJ).
TYPICAL_RANGE_UJ = 262_143_328_850


class PowercapTree:
    """A powercap tree on disk, laid out like ``/sys/class/powercap`` (or nested, on request)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._dirs: dict[str, Path] = {}
        #: Whether the frozen-counter probe takes the static counters as live.
        self.static_counters_live = True
        #: ``energy_uj`` files whose reads come from a :class:`ClockCounter`.
        self.clocked: set[Path] = set()

    def add_zone(
        self,
        dirname: str,
        name: str,
        *,
        energy_uj: int = 1_000_000,
        max_energy_range_uj: int = TYPICAL_RANGE_UJ,
        inside: str | None = None,
        max_power_uw: int | None = None,
    ) -> Path:
        """Create zone ``dirname`` (``intel-rapl:0``, ``intel-rapl:0:2`` ...).

        ``inside`` nests it in another zone's directory, as ``/sys/devices/virtual/powercap``
        does; otherwise it sits flat under the root, as ``/sys/class/powercap`` lists it.
        """
        parent = self._dirs[inside] if inside else self.root
        path = parent / dirname
        path.mkdir(parents=True)
        (path / "name").write_text(name + "\n")
        (path / "max_energy_range_uj").write_text(f"{max_energy_range_uj}\n")
        if max_power_uw is not None:  # what powercap calls the long-term limit's maximum
            (path / "constraint_0_name").write_text("long_term\n")
            (path / "constraint_0_max_power_uw").write_text(f"{max_power_uw}\n")
        self._dirs[dirname] = path
        self.set(dirname, energy_uj)
        return path

    def add_control_type(self, dirname: str) -> Path:
        """Create a control-type directory (``intel-rapl``) that holds nested zones."""
        path = self.root / dirname
        path.mkdir()
        (path / "enabled").write_text("1\n")
        self._dirs[dirname] = path
        return path

    def path(self, dirname: str) -> Path:
        return self._dirs[dirname]

    def energy_path(self, dirname: str) -> Path:
        return self._dirs[dirname] / "energy_uj"

    def get(self, dirname: str) -> int:
        return int(self.energy_path(dirname).read_text())

    def max_range(self, dirname: str) -> int:
        return int((self._dirs[dirname] / "max_energy_range_uj").read_text())

    def set(self, dirname: str, energy_uj: int) -> None:
        """Write a counter atomically, so a concurrent reader never sees a half-written file."""
        target = self.energy_path(dirname)
        tmp = target.with_name("energy_uj.tmp")
        tmp.write_text(f"{energy_uj}\n")
        os.replace(tmp, target)

    def advance(self, dirname: str, delta_uj: int) -> None:
        """Add energy the way the hardware does: over time, wrapping to 0 at its range.

        Large amounts are added in steps of at most 0.5 J a millisecond apart (about 500 W at
        most), as a real package gains them, so no read sees more power than a zone can draw.
        """
        step_uj = 500_000
        while delta_uj > 0:
            now_uj = min(step_uj, delta_uj)
            self.set(dirname, (self.get(dirname) + now_uj) % self.max_range(dirname))
            delta_uj -= now_uj
            if delta_uj > 0:
                time.sleep(0.001)


class ClockCounter:
    """A RAPL counter driven by the clock: ``power_w`` since it started, wrapped at its range.

    Like the hardware, it changes once per ``period_s`` (about 1 ms for RAPL). With ``busy_w``
    it also gains that many watts per CPU-second this process uses (a package draws more
    while it computes), so a workload stands out from idle. Faults on
    request: ``resets_at_s`` (seconds after start at which it restarts from 0), ``frozen``
    (never changes; settable mid-run), ``torn_at_s`` (the first read at or after each time
    returns a garbled value: ``"short"`` drops the last digit, ``"long"`` appends one).
    """

    def __init__(
        self,
        *,
        power_w: float,
        range_uj: int,
        start_uj: int = 0,
        period_s: float = 0.001,
        resets_at_s: tuple[float, ...] = (),
        frozen: bool = False,
        torn_at_s: dict[float, str] | None = None,
        clock: Any = time.perf_counter,
        busy_w: float = 0.0,
    ) -> None:
        self.power_w = power_w
        self.range_uj = range_uj
        self.start_uj = start_uj
        self.period_s = period_s
        self.resets_at_s = sorted(resets_at_s)
        self.frozen = frozen
        self.torn_at_s = dict(torn_at_s or {})
        self.reads = 0
        self.clock = clock
        self.t0 = clock()
        self.busy_w = busy_w
        self.cpu0 = time.process_time()
        self._frozen_at_uj: int | None = None
        self._last_uj = start_uj

    def value_uj(self, now: float | None = None) -> int:
        """The counter at ``now`` (default: the current time)."""
        t = (self.clock() if now is None else now) - self.t0
        if self.frozen:
            if self._frozen_at_uj is None:
                self._frozen_at_uj = self.start_uj if self.reads == 0 else self._last_uj
            return self._frozen_at_uj
        t = math.floor(t / self.period_s) * self.period_s
        reset = max((r for r in self.resets_at_s if r <= t), default=None)
        if reset is None:
            total_uj = self.start_uj + self.power_w * t * 1e6
        else:
            total_uj = self.power_w * (t - reset) * 1e6
        if self.busy_w:
            busy_s = time.process_time() - self.cpu0
            total_uj += self.busy_w * math.floor(busy_s / self.period_s) * self.period_s * 1e6
        return int(total_uj) % self.range_uj

    def set_power(self, power_w: float) -> None:
        """From now on, draw ``power_w`` (the energy so far is kept)."""
        now = self.clock()
        self.start_uj = self.value_uj(now)
        self.t0 = now
        self.power_w = power_w
        self.resets_at_s = []

    def read(self) -> int:
        value = self.value_uj()
        self.reads += 1
        self._last_uj = value
        t = self.clock() - self.t0
        due = [at for at in self.torn_at_s if at <= t]
        if due:
            torn = self.torn_at_s.pop(min(due))
            return value // 10 if torn == "short" else value * 10 + 7
        return value


class ClockCounters:
    """Attach :class:`ClockCounter` objects to zones of a tree; reads of them go to the counter."""

    def __init__(self) -> None:
        self.by_path: dict[Path, ClockCounter] = {}

    def attach(self, tree: PowercapTree, dirname: str, **kwargs: Any) -> ClockCounter:
        counter = ClockCounter(range_uj=tree.max_range(dirname), **kwargs)
        self.by_path[tree.energy_path(dirname)] = counter
        tree.clocked.add(tree.energy_path(dirname))
        return counter


class SimulatedClock:
    """A clock that moves only when told: reads stamped with it ignore the machine's load."""

    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


@pytest.fixture
def simulated_clock(monkeypatch: pytest.MonkeyPatch) -> SimulatedClock:
    """The RAPL accumulator's clock, simulated (for polls driven by hand at exact times)."""
    clock = SimulatedClock()
    monkeypatch.setattr(rapl_counter, "_now", clock)
    return clock


@pytest.fixture
def clock_counters(monkeypatch: pytest.MonkeyPatch) -> ClockCounters:
    """Zones whose ``energy_uj`` reads come from clock-driven fake counters."""
    counters = ClockCounters()
    real_read = rapl_tree.read_uj

    def read(path: Path) -> int:
        counter = counters.by_path.get(path)
        return counter.read() if counter is not None else real_read(path)

    monkeypatch.setattr(rapl_tree, "read_uj", read)
    monkeypatch.setattr(rapl_counter, "FROZEN_AFTER_S", 0.3)  # tests need not wait 2 s
    return counters


@pytest.fixture
def powercap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> PowercapTree:
    """An empty powercap tree under ``tmp_path``.

    The sampler probes that its counters move before it uses them; this tree's counters move
    only when the test moves them, so the probe is told they are live, unless the test sets
    ``static_counters_live = False`` or attaches a :class:`ClockCounter` (then the real probe
    reads them).
    """
    tree = PowercapTree(tmp_path / "powercap")
    real_probe = rapl_counter.probe_counters

    def probe(zones: tuple[rapl_tree.Zone, ...], **kwargs: Any) -> rapl_counter.CounterProbe:
        clocked = any(z.energy_path in tree.clocked for z in zones)
        if tree.static_counters_live and not clocked:
            return rapl_counter.CounterProbe(period_s=None, problems=[])
        return real_probe(zones, **kwargs)

    monkeypatch.setattr(rapl_counter, "probe_counters", probe)
    return tree


@pytest.fixture
def intel_tree(powercap: PowercapTree) -> PowercapTree:
    """One Intel package with core, uncore and DRAM sub-zones and an MMIO duplicate."""
    powercap.add_zone("intel-rapl:0", "package-0", energy_uj=5_000_000)
    powercap.add_zone("intel-rapl:0:0", "core", energy_uj=2_000_000)
    powercap.add_zone("intel-rapl:0:1", "uncore", energy_uj=300_000)
    powercap.add_zone("intel-rapl:0:2", "dram", energy_uj=7_000_000)
    powercap.add_zone("intel-rapl-mmio:0", "package-0", energy_uj=5_000_000)
    return powercap


@pytest.fixture
def powercap_env(
    hidden_rapl: Path, intel_tree: PowercapTree, monkeypatch: pytest.MonkeyPatch
) -> PowercapTree:
    """``intel_tree``, with ``COMPRESSLAB_POWERCAP_ROOT`` pointing at it.

    Requests ``hidden_rapl`` so that it runs after it and overrides it.
    """
    monkeypatch.setenv(rapl_tree.ROOT_ENV, str(intel_tree.root))
    return intel_tree


# --- NVML -------------------------------------------------------------------------------------


class FakeNvml:
    """A fake ``pynvml``: same names, same error classes, counters from ``itertools.count``.

    Like the real library, every device call before ``nvmlInit`` (or after the matching
    ``nvmlShutdown``) raises ``NVMLError_Uninitialized``.
    """

    NVML_CLOCK_SM = 1
    NVML_TEMPERATURE_GPU = 0
    NVML_DEVICE_MIG_ENABLE = 1

    class NVMLError(Exception):
        pass

    class NVMLError_NotSupported(NVMLError):
        pass

    class NVMLError_LibraryNotFound(NVMLError):
        pass

    class NVMLError_Uninitialized(NVMLError):
        pass

    class NVMLError_NoPermission(NVMLError):
        pass

    class NVMLError_NotFound(NVMLError):
        pass

    def __init__(
        self,
        *,
        count: int = 1,
        energy_counter: bool = True,
        library: bool = True,
        power_mw: int = 150_000,
        energy_start_mj: int = 9_000_000,
        energy_step_mj: int = 250_000,
    ) -> None:
        self.count = count
        self.energy_counter = energy_counter
        self.library = library
        self.power_mw = power_mw
        self.init_depth = 0
        self.inits = 0
        self.power_calls = 0
        self.energy_error: Exception | None = None
        self.unsupported: set[str] = set()
        self.may_set_limit = True
        self.limits_mw = [300_000] * count
        self.limit_history: list[tuple[int, int]] = []
        self.mig: set[int] = set()  # the GPUs in MIG mode (split into slices)
        # Device i counts (i + 1) steps per call, so devices are told apart by their joules.
        self.counters = [
            itertools.count(energy_start_mj, energy_step_mj * (i + 1)) for i in range(count)
        ]

    def _check(self) -> None:
        if self.init_depth <= 0:
            raise self.NVMLError_Uninitialized("Uninitialized")

    def _device(self, handle: Any) -> int:
        self._check()
        kind, index = handle
        assert kind == "handle"
        return int(index)

    def _maybe_unsupported(self, name: str) -> None:
        if name in self.unsupported:
            raise self.NVMLError_NotSupported("Not Supported")

    def nvmlInit(self) -> None:
        if not self.library:
            raise self.NVMLError_LibraryNotFound("NVML Shared Library Not Found")
        self.init_depth += 1
        self.inits += 1

    def nvmlShutdown(self) -> None:
        self._check()
        self.init_depth -= 1

    def nvmlDeviceGetCount(self) -> int:
        self._check()
        return self.count

    def nvmlDeviceGetHandleByIndex(self, index: int) -> tuple[str, int]:
        self._check()
        if not 0 <= index < self.count:
            raise self.NVMLError("Invalid Argument")
        return ("handle", index)

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: Any) -> int:
        index = self._device(handle)
        if not self.energy_counter:
            raise self.NVMLError_NotSupported("Not Supported")
        if self.energy_error is not None:
            raise self.energy_error
        return next(self.counters[index])

    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:
        self._device(handle)
        self.power_calls += 1
        return self.power_mw

    def nvmlDeviceGetClockInfo(self, handle: Any, clock: int) -> int:
        self._device(handle)
        assert clock == self.NVML_CLOCK_SM
        self._maybe_unsupported("clock")
        return 1410

    def nvmlDeviceGetPowerManagementLimit(self, handle: Any) -> int:
        index = self._device(handle)
        self._maybe_unsupported("power_limit")
        return self.limits_mw[index]

    def nvmlDeviceGetPowerManagementLimitConstraints(self, handle: Any) -> tuple[int, int]:
        self._device(handle)
        return (100_000, 300_000)

    def nvmlDeviceSetPowerManagementLimit(self, handle: Any, limit_mw: int) -> None:
        index = self._device(handle)
        if not self.may_set_limit:
            raise self.NVMLError_NoPermission("Insufficient Permissions")
        self.limits_mw[index] = limit_mw
        self.limit_history.append((index, limit_mw))

    def nvmlDeviceGetTemperature(self, handle: Any, sensor: int) -> int:
        self._device(handle)
        assert sensor == self.NVML_TEMPERATURE_GPU
        self._maybe_unsupported("temperature")
        return 55

    # Device i's UUID and PCI bus id, as NVML formats them (bus ids in PCI order: 0x1a, 0x1b...).
    @staticmethod
    def uuid_of(index: int) -> str:
        return f"GPU-{index:08x}-5e1f-4c2a-9b7d-{0xA0 + index:012x}"

    @staticmethod
    def pci_of(index: int) -> str:
        return f"00000000:{0x1A + index:02X}:00.0"

    def nvmlDeviceGetUUID(self, handle: Any) -> str:
        return self.uuid_of(self._device(handle))

    def nvmlDeviceGetIndex(self, handle: Any) -> int:
        return self._device(handle)

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> tuple[str, int]:
        self._check()
        for index in range(self.count):
            if self.uuid_of(index) == uuid:
                return ("handle", index)
        raise self.NVMLError_NotFound("Not Found")

    def nvmlDeviceGetHandleByPciBusId(self, bus_id: str) -> tuple[str, int]:
        self._check()
        for index in range(self.count):
            if self.pci_of(index).lower().endswith(bus_id.lower().split(":", 1)[-1]):
                return ("handle", index)
        raise self.NVMLError_NotFound("Not Found")

    def nvmlDeviceGetMigMode(self, handle: Any) -> list[int]:
        index = self._device(handle)
        self._maybe_unsupported("mig")  # pre-Ampere GPUs have no MIG mode
        mode = int(index in self.mig)
        return [mode, mode]  # current, pending

    def nvmlDeviceGetName(self, handle: Any) -> str:
        self._device(handle)
        return "NVIDIA Fake V100"

    def nvmlSystemGetDriverVersion(self) -> str:
        self._check()
        return "550.54.15"


@pytest.fixture
def fake_nvml(hidden_nvml: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A factory: ``fake_nvml(**kwargs)`` builds a :class:`FakeNvml` and patches it in.

    Requests ``hidden_nvml`` so that the fake, patched in later, overrides the hidden host.
    """
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    # On a machine with a real GPU, torch would name it by a UUID the fake does not know.
    monkeypatch.setattr(cuda, "torch_identity", lambda ordinal: None)
    made: list[FakeNvml] = []

    def make(**kwargs: Any) -> FakeNvml:
        fake = FakeNvml(**kwargs)
        monkeypatch.setattr(nvml_library, "_nvml", lambda: fake)
        made.append(fake)
        return fake

    yield make
    for fake in made:
        assert fake.init_depth == 0, "an nvmlInit was not matched by nvmlShutdown"


# --- CUDA torch ---------------------------------------------------------------------------------


class FakeCudaTorch:
    """What :func:`compresslab.energy.cuda.device_problem` asks torch: a CUDA build with GPUs."""

    __version__ = "2.13.0+cu126"

    def __init__(self, *, devices: int = 1, build: str | None = "12.6") -> None:
        self.version = types.SimpleNamespace(cuda=build)
        self.cuda = types.SimpleNamespace(
            is_available=lambda: devices > 0 and build is not None,
            device_count=lambda: devices,
            # The models run on the real CPU torch: no CUDA work is ever queued to wait for.
            is_initialized=lambda: False,
        )


@pytest.fixture
def fake_cuda_torch(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A factory: ``fake_cuda_torch(devices=2)`` makes torch look like a CUDA build with GPUs.

    Only :mod:`compresslab.energy.cuda` sees it (its ``_torch`` seam: the device check and the
    window edges' synchronize); the models still run on the real torch, on the CPU, also on a
    machine with a real GPU.
    """

    def make(**kwargs: Any) -> FakeCudaTorch:
        fake = FakeCudaTorch(**kwargs)
        monkeypatch.setattr(cuda, "_torch", lambda: fake)
        return fake

    yield make
