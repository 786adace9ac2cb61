"""NVIDIA GPU energy through NVML (``measured``, or ``integrated`` on older GPUs).

Per device, the sampler uses the best source NVML offers:

- ``nvmlDeviceGetTotalEnergyConsumption``: millijoules since the driver loaded (Volta and newer).
  The difference over the window is ``measured``. The counter updates every 20 to 100 ms, so a
  window should last well over a second.
- Otherwise (``NVMLError_NotSupported``), ``nvmlDeviceGetPowerUsage`` (milliwatts) is polled by a
  background thread and integrated over time with the trapezoid rule: ``integrated``. On Ampere
  and newer that power is a one-second average, so windows shorter than a few seconds smear.

Both cover the whole board as NVML reports it, including work of other processes on the GPU.
CUDA work on the model's device is synchronised at both window edges (when this process has
initialised CUDA through torch), so a window counts neither queued work of the previous one
nor leaves its own behind.

Which devices (:mod:`.nvml_devices`): ``device_indices`` when given; else the GPU torch runs
the model on (``torch_device``, i.e. ``energy.device``), found in NVML by its UUID or PCI bus id
(``CUDA_VISIBLE_DEVICES`` respected, index and UUID forms); else every GPU CUDA makes visible.
The host CPU's energy beside the GPU's is :mod:`.gpu_host`'s job.

``pynvml`` (the ``nvidia-ml-py`` package) is imported lazily through :func:`_nvml`, and its
errors are translated where they enter: :class:`BackendUnavailableError` when NVML cannot run
here, :class:`MeasurementError` when a reading fails mid-window.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from compresslab.energy import cuda
from compresslab.energy.base import (
    Availability,
    ComponentEnergy,
    Provenance,
    Reading,
    check_reading,
)
from compresslab.energy.nvml_devices import Target, select_targets
from compresslab.errors import BackendUnavailableError, MeasurementError, RecipeError
from compresslab.units import mj_to_j, mw_to_w

logger = logging.getLogger(__name__)

#: How often the total-energy counter changes (NVML documents 20 to 100 ms; take the slow end).
ENERGY_COUNTER_PERIOD_S = 0.1
#: Power readings on Ampere and newer are one-second averages.
POWER_AVERAGE_PERIOD_S = 1.0
DEFAULT_POLL_INTERVAL_S = 0.05

_NO_LIBRARY = (
    "NVML library not found: no NVIDIA driver on this machine (libnvidia-ml.so.1 is missing); "
    "install the NVIDIA driver, or in a container run with the NVIDIA container toolkit "
    "(`--gpus all`), or use `sampler: rapl` / `sampler: estimate`"
)


def _nvml() -> Any:
    """Import and return ``pynvml`` (tests replace this function with a fake module)."""
    import pynvml

    return pynvml


def _load() -> Any:
    try:
        return _nvml()
    except ImportError as e:
        raise BackendUnavailableError(
            f"cannot import pynvml ({e}): install the nvidia-ml-py package "
            "(`pip install nvidia-ml-py`), a dependency of compresslab"
        ) from e


def _init(nv: Any) -> None:
    try:
        nv.nvmlInit()
    except nv.NVMLError_LibraryNotFound as e:
        raise BackendUnavailableError(_NO_LIBRARY) from e
    except nv.NVMLError as e:
        raise BackendUnavailableError(
            f"nvmlInit failed ({e}): check that the NVIDIA driver is loaded (`nvidia-smi`), "
            "or use `sampler: rapl` / `sampler: estimate`"
        ) from e


def _shutdown(nv: Any) -> None:
    try:
        nv.nvmlShutdown()
    except nv.NVMLError as e:  # shutting down cannot make a reading wrong
        logger.debug("nvmlShutdown failed: %s", e)


@dataclass(frozen=True)
class _Device:
    index: int
    handle: Any
    has_counter: bool
    how: str = ""

    @property
    def component(self) -> str:
        return f"gpu-{self.index}"


def _optional(nv: Any, query: Callable[..., Any], *args: Any) -> Any:
    """Run an informational NVML query; a failure only leaves the field out."""
    try:
        return query(*args)
    except (nv.NVMLError, AttributeError) as e:
        logger.debug("optional NVML query %s failed: %s", getattr(query, "__name__", query), e)
        return None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _device_facts(nv: Any, device: _Device) -> dict[str, float]:
    """Clock, power limit and temperature of one device now; missing ones are left out."""
    facts: dict[str, float] = {}
    sm_clock_mhz = _optional(nv, nv.nvmlDeviceGetClockInfo, device.handle, nv.NVML_CLOCK_SM)
    if sm_clock_mhz is not None:
        facts["sm_clock_mhz"] = float(sm_clock_mhz)
    limit_mw = _optional(nv, nv.nvmlDeviceGetPowerManagementLimit, device.handle)
    if limit_mw is not None:
        facts["power_limit_w"] = mw_to_w(limit_mw)
    temperature_c = _optional(
        nv, nv.nvmlDeviceGetTemperature, device.handle, nv.NVML_TEMPERATURE_GPU
    )
    if temperature_c is not None:
        facts["temperature_c"] = float(temperature_c)
    return facts


@dataclass
class _Window:
    """One open window: the NVML module, the devices, start counters and power samples."""

    nv: Any
    devices: tuple[_Device, ...]
    interval_s: float
    start_mj: dict[int, int] = field(default_factory=dict)
    samples: dict[int, list[tuple[float, float]]] = field(default_factory=dict)
    t0_s: float = 0.0
    error: Exception | None = None
    stopping: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    @property
    def polled(self) -> tuple[_Device, ...]:
        return tuple(d for d in self.devices if not d.has_counter)

    def _energy_mj(self, device: _Device) -> int:
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
                energy_mj = _trapezoid_mj(self.samples[device.index])
                provenance = Provenance.INTEGRATED
            components.append(ComponentEnergy(device.component, mj_to_j(energy_mj), provenance))
        return duration_s, tuple(components)


def _trapezoid_mj(samples: list[tuple[float, float]]) -> float:
    """Integrate (time_s, power_mw) samples: milliwatt-seconds are millijoules."""
    return sum(
        (p0_mw + p1_mw) / 2.0 * (t1_s - t0_s)
        for (t0_s, p0_mw), (t1_s, p1_mw) in zip(samples, samples[1:], strict=False)
    )


class NvmlSampler:
    """GPU energy from NVML: the energy counter where supported, else integrated power.

    Args:
        device_indices: NVML indices of the GPUs to count (as ``nvidia-smi`` lists them).
        torch_device: the device the model runs on (``cuda`` or ``cuda:N``): that GPU is
            counted, found by its UUID or PCI bus id, and synchronised at the window edges.
            With neither, every GPU CUDA makes visible is counted.
        poll_interval_s: how often power is polled on GPUs without an energy counter.

    Raises:
        RecipeError: a negative or repeated device index, or a non-positive poll interval.
    """

    name = "nvml"
    provenance = Provenance.MEASURED
    scope = "machine"

    def __init__(
        self,
        *,
        device_indices: tuple[int, ...] | list[int] | None = None,
        torch_device: str | None = None,
        poll_interval_s: float = DEFAULT_POLL_INTERVAL_S,
    ) -> None:
        if device_indices is not None:
            device_indices = tuple(device_indices)
            if (
                not device_indices
                or any(
                    isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in device_indices
                )
                or len(set(device_indices)) != len(device_indices)
            ):
                raise RecipeError(
                    f"device_indices {device_indices!r} must be distinct non-negative integers "
                    "(NVML indices, as `nvidia-smi` lists them); leave it out for every "
                    "visible GPU",
                    field="energy.nvml.device_indices",
                )
        if not (0 < poll_interval_s < float("inf")):
            raise RecipeError(
                f"poll_interval_s must be a positive number of seconds, not {poll_interval_s!r}",
                field="energy.nvml.poll_interval_s",
            )
        if torch_device is not None and not cuda.is_cuda(torch_device):
            raise RecipeError(
                f"nvml measures a GPU, but the model runs on {torch_device!r}: set "
                "`energy.device: cuda` (or cuda:N), or use `sampler: rapl` / `sampler: estimate`",
                field="energy.device",
            )
        self.device_indices = device_indices
        self.torch_device = torch_device
        self.poll_interval_s = poll_interval_s
        self._window: _Window | None = None
        self._has_counter: tuple[bool, ...] | None = None

    def _open(self, nv: Any) -> tuple[_Device, ...]:
        """The selected devices with their energy source (NVML must be initialised)."""
        try:
            targets: tuple[Target, ...] = select_targets(
                nv, device_indices=self.device_indices, torch_device=self.torch_device
            )
            devices = tuple(
                _Device(t.index, t.handle, _probe_counter(nv, t.index, t.handle), t.how)
                for t in targets
            )
        except nv.NVMLError as e:
            raise BackendUnavailableError(
                f"NVML could not list the GPUs ({e}); check them with `nvidia-smi`"
            ) from e
        self._has_counter = tuple(d.has_counter for d in devices)
        return devices

    def available(self) -> Availability:
        """Whether NVML runs and every selected GPU reports energy or power."""
        try:
            nv = _load()
            _init(nv)
        except BackendUnavailableError as e:
            return Availability(False, str(e))
        try:
            devices = self._open(nv)
            names = []
            for device in devices:
                model = _optional(nv, nv.nvmlDeviceGetName, device.handle)
                source = "energy counter" if device.has_counter else "power polling, integrated"
                label = device.component if model is None else f"{device.component} {_text(model)}"
                names.append(f"{label} ({source})")
        except BackendUnavailableError as e:
            return Availability(False, str(e))
        finally:
            _shutdown(nv)
        return Availability(True, "NVML: " + "; ".join(names))

    def update_period_s(self) -> float:
        """0.1 s with energy counters (they update every 20-100 ms), 1.0 s when integrating.

        Ampere and newer report power as a one-second average, and a GPU whose energy source is
        not yet known is assumed to be one of those.
        """
        if self._has_counter is None:
            self.available()
        if self._has_counter and all(self._has_counter):
            return ENERGY_COUNTER_PERIOD_S
        return POWER_AVERAGE_PERIOD_S

    def start(self) -> None:
        """Open a window: synchronise CUDA, read the counters, start power polling if needed.

        Raises:
            BackendUnavailableError: NVML cannot run here (the message says why).
            MeasurementError: a window is already open, or a first reading failed.
        """
        if self._window is not None:
            raise MeasurementError("nvml sampler started twice: stop() the open window first")
        nv = _load()
        _init(nv)
        try:
            window = _Window(nv, self._open(nv), self.poll_interval_s)
            cuda.synchronize(self.torch_device)
            window.begin()
        except BaseException:
            _shutdown(nv)
            raise
        self._window = window

    def stop(self) -> Reading:
        """Close the window: synchronise CUDA, read the counters, return the joules per GPU.

        Raises:
            MeasurementError: not started, a reading failed, or the window holds no energy.
        """
        window = self._window
        if window is None:
            raise MeasurementError("nvml sampler stopped before it was started")
        self._window = None
        nv = window.nv
        try:
            try:
                cuda.synchronize(self.torch_device)
            finally:
                duration_s, components = window.finish()
            details: dict[str, float] = {}
            for device in window.devices:
                for key, value in _device_facts(nv, device).items():
                    details[f"gpu{device.index}_{key}"] = value
                if not device.has_counter:
                    details[f"gpu{device.index}_power_samples"] = float(
                        len(window.samples[device.index])
                    )
        finally:
            _shutdown(nv)
        reading = Reading(duration_s=duration_s, components=components, details=details)
        return check_reading(reading, sampler=self.name)

    def metadata(self) -> dict[str, str]:
        """Driver, device names, energy source, clocks, power limit, temperature, coverage."""
        meta = {
            "covers": (
                "whole GPU board power of the selected devices as NVML reports it, including "
                "other processes' work on them; no CPU, no host memory"
            ),
            "counter_resolution": (
                "energy counter in millijoules, updated every 20-100 ms (measured); without it, "
                "power in milliwatts (a 1-s average on Ampere+) polled every "
                f"{self.poll_interval_s:g} s and integrated (integrated)"
            ),
            "device_order": (
                "NVML indices (PCI bus order); the model's GPU is found by its UUID or PCI bus "
                "id (from torch, or CUDA_VISIBLE_DEVICES); bare indices match CUDA's only with "
                "CUDA_DEVICE_ORDER=PCI_BUS_ID"
            ),
        }
        if self.torch_device is not None:
            meta["torch_device"] = self.torch_device
        try:
            nv = _load()
            _init(nv)
        except BackendUnavailableError as e:
            meta["status"] = f"unavailable: {e}"
            return meta
        try:
            driver = _optional(nv, nv.nvmlSystemGetDriverVersion)
            if driver is not None:
                meta["driver_version"] = _text(driver)
            for device in self._open(nv):
                prefix = f"gpu{device.index}"
                meta[f"{prefix}_selected_as"] = device.how
                name = _optional(nv, nv.nvmlDeviceGetName, device.handle)
                if name is not None:
                    meta[f"{prefix}_name"] = _text(name)
                meta[f"{prefix}_energy_source"] = (
                    "nvmlDeviceGetTotalEnergyConsumption (measured)"
                    if device.has_counter
                    else "nvmlDeviceGetPowerUsage polled and integrated (integrated)"
                )
                for key, value in _device_facts(nv, device).items():
                    meta[f"{prefix}_{key}"] = f"{value:g}"
        except BackendUnavailableError as e:
            meta["status"] = f"unavailable: {e}"
        finally:
            _shutdown(nv)
        return meta


def _probe_counter(nv: Any, index: int, handle: Any) -> bool:
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


@contextlib.contextmanager
def power_limit(
    power_w: float,
    *,
    device_indices: tuple[int, ...] | None = None,
    torch_device: str | None = None,
) -> Iterator[None]:
    """Run a block with the GPUs' power limit set to ``power_w``, restored afterwards.

    The GPUs are chosen as the sampler chooses them (``torch_device``: the model's GPU).

    A lower limit can save energy at little speed cost (Zeus's power-limit optimizer, Perseus).
    The previous limit of every device is restored on exit, also when the block raises.

    Raises:
        BackendUnavailableError: no NVML, no GPU, or no permission to set the limit (root, or
            a driver that allows it).
        RecipeError: ``power_w`` is outside a device's allowed range (the message gives it).
    """
    nv = _load()
    _init(nv)
    restored: list[tuple[Any, int]] = []
    try:
        for target in select_targets(nv, device_indices=device_indices, torch_device=torch_device):
            index, handle = target.index, target.handle
            low_mw, high_mw = nv.nvmlDeviceGetPowerManagementLimitConstraints(handle)
            target_mw = int(round(power_w * 1000))
            if not low_mw <= target_mw <= high_mw:
                raise RecipeError(
                    f"GPU {index} allows power limits from {mw_to_w(low_mw):g} W to "
                    f"{mw_to_w(high_mw):g} W, not {power_w:g} W: choose values in that range",
                    field="runtime.power_limit_w",
                )
            before_mw = int(nv.nvmlDeviceGetPowerManagementLimit(handle))
            try:
                nv.nvmlDeviceSetPowerManagementLimit(handle, target_mw)
            except nv.NVMLError as e:
                raise BackendUnavailableError(
                    f"cannot set GPU {index}'s power limit ({e}): it needs root (or "
                    "`nvidia-smi -pl` rights); drop runtime.power_limit_w from the recipe"
                ) from e
            restored.append((handle, before_mw))
            logger.info("GPU %d power limit %g W (was %g W)", index, power_w, mw_to_w(before_mw))
        yield
    finally:
        for handle, before_mw in reversed(restored):
            try:
                nv.nvmlDeviceSetPowerManagementLimit(handle, before_mw)
            except nv.NVMLError as e:  # pragma: no cover - logged, the block's result stands
                logger.error("could not restore a GPU power limit to %d mW: %s", before_mw, e)
        _shutdown(nv)
