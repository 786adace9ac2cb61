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

Which devices (:mod:`.nvml_devices`): ``device_indices`` when given (refused if they leave out
the model's GPU, or if that GPU is a MIG slice); else the GPU torch runs
the model on (``torch_device``, i.e. ``energy.device``), found in NVML by its UUID or PCI bus id
(``CUDA_VISIBLE_DEVICES`` respected, index and UUID forms); else every GPU CUDA makes visible.
The host CPU's energy beside the GPU's is :mod:`.gpu_host`'s job.

``pynvml`` (the ``nvidia-ml-py`` package) is imported lazily (:mod:`.nvml_library`), and its
errors are translated where they enter: :class:`BackendUnavailableError` when NVML cannot run
here, :class:`MeasurementError` when a reading fails mid-window. One window's readings are
:mod:`.nvml_window`'s job; a GPU power limit for a block of code is :mod:`.nvml_power_limit`'s.
"""

from __future__ import annotations

import logging
from typing import Any

from compresslab.energy import cuda
from compresslab.energy.base import Availability, Provenance, Reading, check_reading
from compresslab.energy.nvml_devices import Target, select_targets
from compresslab.energy.nvml_library import (
    as_text,
    init_nvml,
    load_nvml,
    optional_query,
    shutdown_nvml,
)
from compresslab.energy.nvml_window import GpuDevice, Window, device_facts, probe_counter
from compresslab.errors import BackendUnavailableError, MeasurementError, RecipeError

logger = logging.getLogger(__name__)

#: How often the total-energy counter changes (NVML documents 20 to 100 ms; take the slow end).
ENERGY_COUNTER_PERIOD_S = 0.1
#: Power readings on Ampere and newer are one-second averages.
POWER_AVERAGE_PERIOD_S = 1.0
DEFAULT_POLL_INTERVAL_S = 0.05


class NvmlSampler:
    """GPU energy from NVML: the energy counter where supported, else integrated power.

    Args:
        device_indices: NVML indices of the GPUs to count (as ``nvidia-smi`` lists them); with
            ``torch_device``, they must include the model's GPU.
        torch_device: the device the model runs on (``cuda`` or ``cuda:N``): that GPU is
            counted, found by its UUID or PCI bus id, and synchronised at the window edges;
            a MIG slice is refused (NVML counts energy per physical GPU).
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
        self._window: Window | None = None
        self._has_counter: tuple[bool, ...] | None = None

    def _open(self, nv: Any) -> tuple[GpuDevice, ...]:
        """The selected devices with their energy source (NVML must be initialised)."""
        try:
            targets: tuple[Target, ...] = select_targets(
                nv, device_indices=self.device_indices, torch_device=self.torch_device
            )
            devices = tuple(
                GpuDevice(t.index, t.handle, probe_counter(nv, t.index, t.handle), t.how)
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
            nv = load_nvml()
            init_nvml(nv)
        except BackendUnavailableError as e:
            return Availability(False, str(e))
        try:
            devices = self._open(nv)
            names = []
            for device in devices:
                model = optional_query(nv, nv.nvmlDeviceGetName, device.handle)
                source = "energy counter" if device.has_counter else "power polling, integrated"
                label = (
                    device.component if model is None else f"{device.component} {as_text(model)}"
                )
                names.append(f"{label} ({source})")
        except BackendUnavailableError as e:
            return Availability(False, str(e))
        finally:
            shutdown_nvml(nv)
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
        nv = load_nvml()
        init_nvml(nv)
        try:
            window = Window(nv, self._open(nv), self.poll_interval_s)
            cuda.synchronize(self.torch_device)
            window.begin()
        except BaseException:
            shutdown_nvml(nv)
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
                for key, value in device_facts(nv, device).items():
                    details[f"gpu{device.index}_{key}"] = value
                if not device.has_counter:
                    details[f"gpu{device.index}_power_samples"] = float(
                        len(window.samples[device.index])
                    )
        finally:
            shutdown_nvml(nv)
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
            nv = load_nvml()
            init_nvml(nv)
        except BackendUnavailableError as e:
            meta["status"] = f"unavailable: {e}"
            return meta
        try:
            driver = optional_query(nv, nv.nvmlSystemGetDriverVersion)
            if driver is not None:
                meta["driver_version"] = as_text(driver)
            for device in self._open(nv):
                prefix = f"gpu{device.index}"
                meta[f"{prefix}_selected_as"] = device.how
                name = optional_query(nv, nv.nvmlDeviceGetName, device.handle)
                if name is not None:
                    meta[f"{prefix}_name"] = as_text(name)
                meta[f"{prefix}_energy_source"] = (
                    "nvmlDeviceGetTotalEnergyConsumption (measured)"
                    if device.has_counter
                    else "nvmlDeviceGetPowerUsage polled and integrated (integrated)"
                )
                for key, value in device_facts(nv, device).items():
                    meta[f"{prefix}_{key}"] = f"{value:g}"
        except BackendUnavailableError as e:
            meta["status"] = f"unavailable: {e}"
        finally:
            shutdown_nvml(nv)
        return meta
