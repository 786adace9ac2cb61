"""A model on a GPU: the GPU's energy (NVML) and the host CPU's (RAPL or the estimate), one window.

A GPU inference also costs host energy: the CPU launches the kernels, runs the Python around
them and waits for the GPU. :class:`GpuHostSampler` reads both over the same windows and returns
one reading with a component per device, each with its own provenance (``gpu-0`` measured by
NVML; ``cpu-package-0`` measured by RAPL, or ``cpu`` and ``memory`` estimated). The reading's
total is their sum, its provenance the weakest of them, and :meth:`GpuHostSampler.metadata`
says what it covers.

At each edge the model's CUDA device is synchronised first, so the window holds all of its GPU
work and none of the previous one's; then both samplers open (or close) back to back.
"""

from __future__ import annotations

import contextlib

from compresslab.energy import cuda
from compresslab.energy.base import (
    Availability,
    Provenance,
    Reading,
    Sampler,
    check_reading,
    weakest,
)
from compresslab.energy.nvml import NvmlSampler
from compresslab.errors import MeasurementError


class GpuHostSampler:
    """The model's GPU (NVML) and the host CPU (another sampler) over the same windows.

    Its name stays ``nvml`` (what a recipe names); :attr:`host` says what the CPU part is.

    Args:
        gpu: the NVML sampler of the model's GPU.
        host: the host CPU's sampler (``rapl`` or ``estimate``).
    """

    name = "nvml"
    scope = "machine"

    def __init__(self, *, gpu: NvmlSampler, host: Sampler) -> None:
        self.gpu = gpu
        self.host = host
        #: The weaker of the GPU's and the host's provenance.
        self.provenance: Provenance = weakest([gpu.provenance, host.provenance])
        self._open = False

    @property
    def systematic_rel(self) -> float | None:
        """The host's stated systematic uncertainty (estimate: +/-50%), a bound for the sum."""
        return getattr(self.host, "systematic_rel", None)

    def available(self) -> Availability:
        """Both samplers must run here; the reason names both."""
        gpu = self.gpu.available()
        if not gpu:
            return gpu
        host = self.host.available()
        if not host:
            return Availability(False, f"host CPU sampler {self.host.name}: {host.reason}")
        return Availability(True, f"{gpu.reason}; host CPU: {self.host.name} ({host.reason})")

    def update_period_s(self) -> float:
        """The slower of the two counters' periods."""
        return max(self.gpu.update_period_s(), self.host.update_period_s())

    def start(self) -> None:
        """Synchronise the model's GPU, then open the host's window and the GPU's."""
        if self._open:
            raise MeasurementError("nvml sampler started twice: stop() the open window first")
        cuda.synchronize(self.gpu.torch_device)
        self.host.start()
        try:
            self.gpu.start()
        except BaseException:
            with contextlib.suppress(Exception):
                self.host.stop()
            raise
        self._open = True

    def stop(self) -> Reading:
        """Synchronise the model's GPU (its last kernels end inside the window), close both.

        Raises:
            CounterFaultError: the host's counter misbehaved (retryable).
            MeasurementError: not started, or either reading is implausible.
        """
        if not self._open:
            raise MeasurementError("nvml sampler stopped before it was started")
        self._open = False
        try:
            cuda.synchronize(self.gpu.torch_device)
        finally:
            try:
                gpu = self.gpu.stop()
            finally:
                host = self.host.stop()
        details = dict(gpu.details)
        details.update({f"host_{k}": v for k, v in host.details.items()})
        details["host_duration_s"] = host.duration_s
        reading = Reading(
            duration_s=gpu.duration_s,
            components=gpu.components + host.components,
            details=details,
        )
        return check_reading(reading, sampler=self.name)

    def metadata(self) -> dict[str, str]:
        """The GPU's metadata, the host's (prefixed ``host_``), and what the total covers."""
        meta = self.gpu.metadata()
        host = self.host.metadata()
        gpu_covers = meta.pop("covers", "")
        meta.update({f"host_{k}": v for k, v in host.items()})
        meta["host_sampler"] = self.host.name
        meta["host_provenance"] = str(self.host.provenance)
        meta["covers"] = (
            f"GPU + host CPU over the same windows, one component each: {gpu_covers}; plus the "
            f"host ({self.host.name}, {self.host.provenance}): {host.get('covers', '')}. The "
            "total is their sum; its provenance is the weaker of the two"
        )
        return meta
