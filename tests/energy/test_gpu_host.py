"""A model on a GPU: its GPU (NVML) and the host CPU (RAPL or the estimate) in the same windows.

NVML is the fake ``pynvml``; RAPL a fake powercap tree with a clock-driven counter; CUDA torch a
fake that only the device check sees (the models run on the real CPU torch).
"""

from __future__ import annotations

import sys
import time
import types
from typing import TYPE_CHECKING, Any

import pytest

from compresslab.energy import Provenance, cuda, select_sampler
from compresslab.energy.estimate import EstimateSampler
from compresslab.energy.gpu_host import GpuHostSampler
from compresslab.energy.nvml import NvmlSampler
from compresslab.energy.rapl import RaplSampler
from compresslab.energy.rapl_tree import ROOT_ENV
from compresslab.errors import BackendUnavailableError
from compresslab.protocol import Protocol, energy_options, measure_callable
from compresslab.recipe import EnergySpec

if TYPE_CHECKING:
    from conftest import ClockCounters, FakeNvml, PowercapTree


@pytest.fixture
def gpu_machine(
    fake_nvml: Any,
    fake_cuda_torch: Any,
    powercap: PowercapTree,
    clock_counters: ClockCounters,
    monkeypatch: pytest.MonkeyPatch,
) -> FakeNvml:
    """Two GPUs, a CUDA torch, and a readable RAPL package drawing 40 W."""
    fake = fake_nvml(count=2, energy_step_mj=1_000)
    fake_cuda_torch(devices=2)
    powercap.add_zone("intel-rapl:0", "package-0", max_power_uw=125_000_000)
    clock_counters.attach(powercap, "intel-rapl:0", power_w=40.0, start_uj=1_000_000_000)
    monkeypatch.setenv(ROOT_ENV, str(powercap.root))
    return fake


def _spec(**energy: Any) -> EnergySpec:
    return EnergySpec.model_validate(energy)


def _select(spec: EnergySpec):
    return select_sampler(spec.sampler, options=energy_options(spec), device=spec.device)


# --- selection ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_auto_on_cuda_measures_the_gpu_with_the_host_cpu_beside_it(gpu_machine: Any) -> None:
    selection = _select(_spec(device="cuda:1"))
    sampler = selection.sampler
    assert isinstance(sampler, GpuHostSampler)
    assert sampler.name == "nvml"
    assert isinstance(sampler.host, RaplSampler)
    assert sampler.gpu.torch_device == "cuda:1"
    assert "host CPU: rapl" in selection.explain()
    sampler.start()
    time.sleep(0.3)
    reading = sampler.stop()
    energies = {c.component: c for c in reading.components}
    assert set(energies) == {"gpu-1", "cpu-package-0"}  # cuda:1 is NVML 1, no other GPU
    assert energies["gpu-1"].energy_j == pytest.approx(2.0)  # the fake's two steps of 1 J
    assert energies["cpu-package-0"].energy_j / reading.duration_s == pytest.approx(40, rel=0.05)
    assert all(c.provenance is Provenance.MEASURED for c in reading.components)
    assert reading.provenance is Provenance.MEASURED
    meta = sampler.metadata()
    assert meta["host_sampler"] == "rapl" and meta["host_provenance"] == "measured"
    assert "GPU + host CPU" in meta["covers"] and "CPU package" in meta["covers"]
    assert meta["torch_device"] == "cuda:1"


@pytest.mark.slow
def test_without_rapl_the_host_is_estimated_and_the_total_says_so(
    gpu_machine: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv(ROOT_ENV, str(tmp_path / "no-powercap"))
    sampler = _select(_spec(device="cuda")).sampler
    assert isinstance(sampler, GpuHostSampler) and isinstance(sampler.host, EstimateSampler)
    assert sampler.provenance is Provenance.ESTIMATED  # the weakest part
    assert sampler.systematic_rel == 0.5
    sampler.start()
    time.sleep(0.05)  # an idle window: the process used no CPU time, which is not an error
    reading = sampler.stop()
    provenance = {c.component: c.provenance for c in reading.components}
    assert provenance == {
        "gpu-0": Provenance.MEASURED,
        "cpu": Provenance.ESTIMATED,
        "memory": Provenance.ESTIMATED,
    }
    assert reading.provenance is Provenance.ESTIMATED
    assert "estimated" in sampler.metadata()["covers"]


@pytest.mark.parametrize(("host", "kind"), [("none", NvmlSampler), ("estimate", GpuHostSampler)])
def test_the_host_part_is_chosen_in_the_recipe(gpu_machine: Any, host: str, kind: type) -> None:
    sampler = _select(_spec(device="cuda", nvml={"host": host})).sampler
    assert isinstance(sampler, kind)


def test_recipe_options_reach_nvml(gpu_machine: FakeNvml) -> None:
    spec = _spec(device="cuda", nvml={"device_indices": [1], "poll_interval_s": 0.02})
    sampler = _select(spec).sampler
    assert isinstance(sampler, GpuHostSampler)
    assert sampler.gpu.device_indices == (1,) and sampler.gpu.poll_interval_s == 0.02
    assert sampler.gpu.torch_device == "cuda"  # still synchronised at the window edges


@pytest.mark.slow
def test_the_protocol_reports_each_component_with_its_provenance(gpu_machine: Any) -> None:
    sampler = _select(_spec(device="cuda:0")).sampler
    protocol = Protocol(warmup_s=0.0, window_s=0.2, min_windows=2, max_windows=2, idle_s=0.0)
    result = measure_callable(
        lambda: time.sleep(0.01), sampler=sampler, inferences_per_call=4, protocol=protocol
    )
    assert set(result.components_j_per_inference) == {"gpu-0", "cpu-package-0"}
    assert result.component_provenance == {"gpu-0": "measured", "cpu-package-0": "measured"}
    assert str(result.provenance) == "measured"
    assert result.sampler == "nvml"
    assert result.metadata["host_sampler"] == "rapl"


# --- what is refused ----------------------------------------------------------------------------


def test_cuda_on_a_cpu_only_torch_is_refused_before_anything_runs(fake_nvml: Any) -> None:
    """Finding: `device: cuda` on a CPU-only torch measured an idle GPU beside a CPU model."""
    fake_nvml()
    with pytest.raises(BackendUnavailableError, match="CPU-only build") as info:
        select_sampler("auto", device="cuda")
    assert "energy.device: cpu" in str(info.value)
    with pytest.raises(BackendUnavailableError, match="CPU-only build"):
        select_sampler("estimate", device="cuda:0")


def test_cuda_device_that_does_not_exist_is_refused(fake_nvml: Any, fake_cuda_torch: Any) -> None:
    fake_nvml(count=1)
    fake_cuda_torch(devices=1)
    with pytest.raises(BackendUnavailableError, match="there is no device 1") as info:
        select_sampler("auto", device="cuda:1")
    assert "CUDA sees 1 device" in str(info.value)
    fake_cuda_torch(devices=0)
    with pytest.raises(BackendUnavailableError, match="sees no CUDA device"):
        select_sampler("auto", device="cuda")


def test_nvml_for_a_model_on_the_cpu_is_refused(fake_nvml: Any) -> None:
    fake_nvml()
    with pytest.raises(BackendUnavailableError, match="idle GPU"):
        select_sampler("nvml", device="cpu")
    with pytest.raises(ValueError, match="measures a GPU"):
        EnergySpec.model_validate({"sampler": "nvml", "device": "cpu"})


def test_auto_on_cuda_without_nvml_is_refused_not_replaced_by_a_cpu_sampler(
    fake_nvml: Any, fake_cuda_torch: Any
) -> None:
    fake_nvml(library=False)
    fake_cuda_torch()
    with pytest.raises(BackendUnavailableError, match="NVML library not found") as info:
        select_sampler("auto", device="cuda")
    assert "count the host CPU only" in str(info.value)


# --- window edges -------------------------------------------------------------------------------


class _Recorder:
    """A host sampler that records when it opens and closes."""

    name = "estimate"
    provenance = Provenance.ESTIMATED
    scope = "process"

    def __init__(self, events: list[str]) -> None:
        self.events = events
        self.inner = EstimateSampler(allow_idle=True)

    def available(self) -> Any:
        return self.inner.available()

    def update_period_s(self) -> float:
        return 0.01

    def start(self) -> None:
        self.events.append("host-start")
        self.inner.start()

    def stop(self) -> Any:
        self.events.append("host-stop")
        return self.inner.stop()

    def metadata(self) -> dict[str, str]:
        return self.inner.metadata()


def test_cuda_is_synchronised_before_each_edge(
    fake_nvml: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model's last kernels finish inside the window; the previous window's before it."""
    fake: FakeNvml = fake_nvml(count=2)
    events: list[str] = []
    cuda_ns = types.SimpleNamespace(
        is_available=lambda: True,
        is_initialized=lambda: True,
        synchronize=lambda device=None: events.append(f"sync {device}"),
    )
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda_ns))
    real_energy = fake.nvmlDeviceGetTotalEnergyConsumption

    def energy(handle: Any) -> int:
        events.append("gpu-read")
        return real_energy(handle)

    monkeypatch.setattr(fake, "nvmlDeviceGetTotalEnergyConsumption", energy)
    sampler = GpuHostSampler(gpu=NvmlSampler(torch_device="cuda:1"), host=_Recorder(events))
    sampler.start()
    events.append("work")
    sampler.stop()
    work = events.index("work")
    before, after = events[:work], events[work + 1 :]
    assert before[0] == "sync cuda:1"  # first: the queue drained, then the counters read
    assert before.index("host-start") < before.index("gpu-read")
    assert after[0] == "sync cuda:1"  # first: the window's kernels finish, then the reads
    assert "gpu-read" in after and "host-stop" in after
    assert all(e == "sync cuda:1" for e in events if e.startswith("sync"))
    assert cuda.is_cuda("cuda:1") and not cuda.is_cuda("cpu")
