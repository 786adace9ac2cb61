"""Faithful fakes of the hardware interfaces the energy samplers read.

- :class:`PowercapTree`: a real temporary sysfs-like tree of ``intel-rapl*`` zones with
  ``name``, ``energy_uj`` and ``max_energy_range_uj`` files, and helpers to move the counters.
- :class:`FakeNvml`: a stand-in for the ``pynvml`` module with the same function names,
  constants and error classes; energy counters come from ``itertools.count``.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from compresslab.energy import nvml as nvml_module
from compresslab.energy import rapl as rapl_module

#: The range most Intel packages report (about 262 kJ).
TYPICAL_RANGE_UJ = 262_143_328_850


class PowercapTree:
    """A powercap tree on disk, laid out like ``/sys/class/powercap`` (or nested, on request)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._dirs: dict[str, Path] = {}

    def add_zone(
        self,
        dirname: str,
        name: str,
        *,
        energy_uj: int = 1_000_000,
        max_energy_range_uj: int = TYPICAL_RANGE_UJ,
        inside: str | None = None,
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
        """Add energy the way the hardware does: the counter wraps to 0 at its range."""
        self.set(dirname, (self.get(dirname) + delta_uj) % self.max_range(dirname))


@pytest.fixture
def powercap(tmp_path: Path) -> PowercapTree:
    """An empty powercap tree under ``tmp_path``."""
    return PowercapTree(tmp_path / "powercap")


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
    monkeypatch.setenv(rapl_module.ROOT_ENV, str(intel_tree.root))
    return intel_tree


# --- NVML -------------------------------------------------------------------------------------


class FakeNvml:
    """A fake ``pynvml``: same names, same error classes, counters from ``itertools.count``.

    Like the real library, every device call before ``nvmlInit`` (or after the matching
    ``nvmlShutdown``) raises ``NVMLError_Uninitialized``.
    """

    NVML_CLOCK_SM = 1
    NVML_TEMPERATURE_GPU = 0

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
    made: list[FakeNvml] = []

    def make(**kwargs: Any) -> FakeNvml:
        fake = FakeNvml(**kwargs)
        monkeypatch.setattr(nvml_module, "_nvml", lambda: fake)
        made.append(fake)
        return fake

    yield make
    for fake in made:
        assert fake.init_depth == 0, "an nvmlInit was not matched by nvmlShutdown"
