"""One NVML measurement window over the selected GPUs: energy counters read, or power polled.

Per device, the window uses the best source NVML offers (:func:`probe_counter`): the total
energy counter (millijoules, ``measured``), else the board power polled by a background thread
and integrated with the trapezoid rule (:func:`trapezoid_mj`, ``integrated``).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from compresslab.energy.base import ComponentEnergy, Provenance
from compresslab.energy.nvml_library import optional_query
from compresslab.errors import BackendUnavailableError, MeasurementError
from compresslab.units import mj_to_j, mw_to_w

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GpuDevice:
    """A selected GPU: its NVML index and handle, its energy source, and why it was chosen."""

    index: int
    handle: Any
    has_counter: bool
    how: str = ""

    @property
    def component(self) -> str:
        """The component's name in a reading, ``gpu-<index>``."""
        return f"gpu-{self.index}"


def probe_counter(nv: Any, index: int, handle: Any) -> bool:
    """True when the GPU has an energy counter, False when its power must be integrated.

    Raises:
        BackendUnavailableError: the GPU reports neither energy nor power.
    """
    try:
        nv.nvmlDeviceGetTotalEnergyConsumption(handle)
        return True
    except nv.NVMLError_NotSupported:
        pass
    try:
        nv.nvmlDeviceGetPowerUsage(handle)
    except nv.NVMLError_NotSupported as e:
        raise BackendUnavailableError(
            f"gpu-{index} reports neither total energy nor power through NVML; "
            "leave it out with `device_indices`, or use `sampler: estimate`"
        ) from e
    logger.info("gpu-%d has no energy counter (pre-Volta): integrating polled power", index)
    return False


def device_facts(nv: Any, device: GpuDevice) -> dict[str, float]:
    """Clock, power limit and temperature of one device now; missing ones are left out."""
    facts: dict[str, float] = {}
    sm_clock_mhz = optional_query(nv, nv.nvmlDeviceGetClockInfo, device.handle, nv.NVML_CLOCK_SM)
    if sm_clock_mhz is not None:
        facts["sm_clock_mhz"] = float(sm_clock_mhz)
    limit_mw = optional_query(nv, nv.nvmlDeviceGetPowerManagementLimit, device.handle)
    if limit_mw is not None:
        facts["power_limit_w"] = mw_to_w(limit_mw)
    temperature_c = optional_query(
        nv, nv.nvmlDeviceGetTemperature, device.handle, nv.NVML_TEMPERATURE_GPU
    )
    if temperature_c is not None:
        facts["temperature_c"] = float(temperature_c)
    return facts


def trapezoid_mj(samples: list[tuple[float, float]]) -> float:
    """Integrate (time_s, power_mw) samples: milliwatt-seconds are millijoules."""
    return sum(
        (p0_mw + p1_mw) / 2.0 * (t1_s - t0_s)
        for (t0_s, p0_mw), (t1_s, p1_mw) in zip(samples, samples[1:], strict=False)
    )


@dataclass
class Window:
    """One open window: the NVML module, the devices, start counters and power samples.

    :meth:`begin` opens it, :meth:`finish` closes it (once each, in that order).
    """

    nv: Any
    devices: tuple[GpuDevice, ...]
    interval_s: float
    start_mj: dict[int, int] = field(default_factory=dict)
    samples: dict[int, list[tuple[float, float]]] = field(default_factory=dict)
    t0_s: float = 0.0
    error: Exception | None = None
    stopping: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    @property
    def polled(self) -> tuple[GpuDevice, ...]:
        """The devices without an energy counter, whose power is polled."""
        return tuple(d for d in self.devices if not d.has_counter)

    def _energy_mj(self, device: GpuDevice) -> int:
        try:
            return int(self.nv.nvmlDeviceGetTotalEnergyConsumption(device.handle))
        except self.nv.NVMLError as e:
            raise MeasurementError(
                f"NVML could not read the energy counter of {device.component} ({e}); "
                "rerun the measurement, or check the GPU with `nvidia-smi`"
            ) from e

    def _sample(self) -> None:
        for device in self.polled:
            try:
                power_mw = float(self.nv.nvmlDeviceGetPowerUsage(device.handle))
            except self.nv.NVMLError as e:
                raise MeasurementError(
                    f"NVML could not read the power of {device.component} ({e}); "
                    "rerun the measurement, or check the GPU with `nvidia-smi`"
                ) from e
            self.samples[device.index].append((time.perf_counter(), power_mw))

    def _run(self) -> None:
        try:
            while not self.stopping.wait(self.interval_s):
                self._sample()
        except Exception as e:  # handed to finish(), which raises it in the caller's thread
            self.error = e

    def begin(self) -> None:
        """Read the start counters and first power samples; start polling if needed."""
        for device in self.devices:
            if device.has_counter:
                self.start_mj[device.index] = self._energy_mj(device)
            else:
                self.samples[device.index] = []
        self.t0_s = time.perf_counter()
        self._sample()
        if self.polled:
            self.thread = threading.Thread(target=self._run, name="compresslab-nvml", daemon=True)
            self.thread.start()

    def finish(self) -> tuple[float, tuple[ComponentEnergy, ...]]:
        """Read the end counters, stop polling, and return the duration and the joules."""
        try:
            end_mj = {d.index: self._energy_mj(d) for d in self.devices if d.has_counter}
            duration_s = time.perf_counter() - self.t0_s
        finally:
            self.stopping.set()
            if self.thread is not None:
                self.thread.join()
        if self.error is not None:
            raise self.error
        self._sample()
        components = []
        for device in self.devices:
            if device.has_counter:
                energy_mj = float(end_mj[device.index] - self.start_mj[device.index])
                provenance = Provenance.MEASURED
            else:
                energy_mj = trapezoid_mj(self.samples[device.index])
                provenance = Provenance.INTEGRATED
            components.append(ComponentEnergy(device.component, mj_to_j(energy_mj), provenance))
        return duration_s, tuple(components)
