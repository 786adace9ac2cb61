from __future__ import annotations

import subprocess
import sys
import threading
import time
import types
from typing import TYPE_CHECKING, Any

import pytest

from compresslab.energy import Provenance, cuda, make_sampler, nvml_library
from compresslab.energy.nvml import NvmlSampler
from compresslab.energy.nvml_devices import cuda_visible_entries
from compresslab.energy.nvml_window import trapezoid_mj
from compresslab.errors import BackendUnavailableError, MeasurementError, RecipeError

if TYPE_CHECKING:
    from conftest import FakeNvml


# Captured at import, before any fixture patches it.
_REAL_NVML_IMPORT = nvml_library._nvml


def _energies(reading) -> dict[str, float]:
    return {c.component: c.energy_j for c in reading.components}


# --- the energy counter (Volta and newer) ------------------------------------------------------


def test_energy_counter_gives_measured_joules(fake_nvml: Any) -> None:
    fake: FakeNvml = fake_nvml(energy_step_mj=250_000)
    sampler = NvmlSampler()
    assert sampler.available()
    sampler.start()
    reading = sampler.stop()
    # itertools.count moves one step between the start and the stop read: 250,000 mJ.
    assert _energies(reading) == {"gpu-0": pytest.approx(250.0)}
    assert reading.provenance is Provenance.MEASURED
    assert reading.duration_s > 0
    assert fake.init_depth == 0
    assert sampler.update_period_s() == pytest.approx(0.1)


def test_each_device_has_its_own_counter(fake_nvml: Any) -> None:
    fake_nvml(count=3, energy_step_mj=1_000)
    sampler = NvmlSampler()
    sampler.start()
    assert _energies(sampler.stop()) == {
        "gpu-0": pytest.approx(1.0),
        "gpu-1": pytest.approx(2.0),
        "gpu-2": pytest.approx(3.0),
    }


def test_clocks_power_limit_and_temperature_are_recorded(fake_nvml: Any) -> None:
    fake_nvml()
    sampler = NvmlSampler()
    sampler.start()
    details = sampler.stop().details
    assert details["gpu0_sm_clock_mhz"] == 1410
    assert details["gpu0_power_limit_w"] == pytest.approx(300.0)  # 300,000 mW
    assert details["gpu0_temperature_c"] == 55
    meta = sampler.metadata()
    assert meta["driver_version"] == "550.54.15"
    assert meta["gpu0_name"] == "NVIDIA Fake V100"
    assert meta["gpu0_power_limit_w"] == "300"
    assert "measured" in meta["gpu0_energy_source"]
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items())


def test_failing_optional_queries_are_left_out(fake_nvml: Any) -> None:
    fake = fake_nvml()
    fake.unsupported = {"clock", "temperature", "power_limit"}
    sampler = NvmlSampler()
    sampler.start()
    reading = sampler.stop()
    assert reading.energy_j > 0
    assert not any(key.startswith("gpu0_") for key in reading.details)
    assert "gpu0_temperature_c" not in sampler.metadata()


def test_read_failure_mid_window_is_a_measurement_error(fake_nvml: Any) -> None:
    fake = fake_nvml()
    sampler = NvmlSampler()
    sampler.start()
    fake.energy_error = fake.NVMLError("GPU is lost")
    with pytest.raises(MeasurementError, match="gpu-0.*GPU is lost") as info:
        sampler.stop()
    assert isinstance(info.value.__cause__, fake.NVMLError)
    assert fake.init_depth == 0
    fake.energy_error = None
    sampler.start()  # usable again
    assert sampler.stop().energy_j > 0


# --- integrated power (pre-Volta) --------------------------------------------------------------


@pytest.mark.slow
def test_without_energy_counter_power_is_polled_and_integrated(fake_nvml: Any) -> None:
    fake = fake_nvml(energy_counter=False, power_mw=150_000)
    sampler = NvmlSampler(poll_interval_s=0.01)
    avail = sampler.available()
    assert avail
    assert "integrated" in avail.reason
    sampler.start()
    calls_at_start = fake.power_calls
    deadline = time.monotonic() + 10.0
    while fake.power_calls < calls_at_start + 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    reading = sampler.stop()
    assert reading.components[0].component == "gpu-0"
    assert reading.components[0].provenance is Provenance.INTEGRATED
    assert reading.provenance is Provenance.INTEGRATED
    assert reading.details["gpu0_power_samples"] >= 5  # first, >= 3 polled, last
    # 150 W over the window; the samples span the window give or take a thread wake-up.
    assert reading.energy_j / reading.duration_s == pytest.approx(150.0, rel=0.5)
    assert sampler.update_period_s() == pytest.approx(1.0)
    assert "integrated" in sampler.metadata()["gpu0_energy_source"]
    assert not any(t.name == "compresslab-nvml" for t in threading.enumerate())


def test_trapezoid_rule() -> None:
    # A ramp from 100 W to 300 W over 2 s, sampled unevenly: exactly 400 J = 400,000 mJ.
    samples = [(10.0, 100_000.0), (10.5, 150_000.0), (11.75, 275_000.0), (12.0, 300_000.0)]
    assert trapezoid_mj(samples) == pytest.approx(400_000.0)
    assert trapezoid_mj(samples[:1]) == 0


def test_device_with_neither_energy_nor_power_is_unavailable(fake_nvml: Any) -> None:
    fake = fake_nvml(energy_counter=False)

    def no_power(handle: Any) -> int:
        raise fake.NVMLError_NotSupported("Not Supported")

    fake.nvmlDeviceGetPowerUsage = no_power
    avail = NvmlSampler().available()
    assert not avail
    assert "neither total energy nor power" in avail.reason


# --- availability ------------------------------------------------------------------------------


def test_library_missing_is_unavailable_with_reason(fake_nvml: Any) -> None:
    fake_nvml(library=False)
    sampler = NvmlSampler()
    avail = sampler.available()
    assert not avail
    assert avail.reason.startswith("NVML library not found: no NVIDIA driver on this machine")
    with pytest.raises(BackendUnavailableError, match="NVML library not found") as info:
        sampler.start()
    assert info.value.__cause__ is not None
    assert sampler.metadata()["status"].startswith("unavailable: NVML library not found")


def test_other_init_failure_is_unavailable(fake_nvml: Any) -> None:
    fake = fake_nvml()

    def init_fails() -> None:
        raise fake.NVMLError("Driver Not Loaded")

    fake.nvmlInit = init_fails
    avail = NvmlSampler().available()
    assert not avail
    assert "Driver Not Loaded" in avail.reason


def test_host_nvml_is_hidden_unless_a_test_asks_for_a_fake(fake_nvml: Any) -> None:
    import pynvml

    # The real module, as on a machine without an NVIDIA driver (tests/conftest.py).
    with pytest.raises(pynvml.NVMLError_LibraryNotFound):
        pynvml.nvmlInit()
    avail = NvmlSampler().available()
    assert not avail
    assert avail.reason.startswith("NVML library not found: no NVIDIA driver on this machine")
    fake_nvml(count=2)
    avail = NvmlSampler().available()
    assert avail and "gpu-1 NVIDIA Fake V100" in avail.reason


@pytest.mark.slow
def test_subprocesses_see_nvml_hidden_too() -> None:
    probe = (
        "import pynvml\n"
        "try:\n    pynvml.nvmlInit()\nexcept pynvml.NVMLError_LibraryNotFound:\n"
        "    print('no driver', pynvml.HIDDEN_BY_COMPRESSLAB_TESTS)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "no driver True"


def test_pynvml_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    avail = NvmlSampler().available()
    assert not avail
    assert "nvidia-ml-py" in avail.reason


def test_fake_can_also_be_patched_in_as_the_pynvml_module(
    fake_nvml: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = fake_nvml(count=2)
    monkeypatch.setattr(nvml_library, "_nvml", _REAL_NVML_IMPORT)  # the real lazy import
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    sampler = make_sampler("nvml")
    assert "gpu-1 NVIDIA Fake V100" in sampler.available().reason
    assert fake.init_depth == 0


def test_zero_devices(fake_nvml: Any) -> None:
    fake_nvml(count=0)
    avail = NvmlSampler().available()
    assert not avail
    assert "0 GPUs" in avail.reason


def test_fake_has_the_names_of_the_real_pynvml(fake_nvml: Any) -> None:
    """The fake is only faithful if the real module has every name the sampler uses."""
    import pynvml

    fake_class = type(fake_nvml())
    names = [n for n in vars(fake_class) if n.startswith(("nvml", "NVML"))]
    assert len(names) > 12
    for name in names:
        assert hasattr(pynvml, name), name
    assert issubclass(pynvml.NVMLError_NotSupported, pynvml.NVMLError)
    assert issubclass(pynvml.NVMLError_LibraryNotFound, pynvml.NVMLError)
    assert pynvml.NVML_CLOCK_SM == fake_class.NVML_CLOCK_SM
    assert pynvml.NVML_TEMPERATURE_GPU == fake_class.NVML_TEMPERATURE_GPU


# --- device selection --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", ()),
        ("0", ("0",)),
        ("2, 0", ("2", "0")),
        ("1,-1,3", ("1",)),  # CUDA stops at the first negative index
        ("-1", ()),
        ("GPU-8f3e2c1a,1", ("GPU-8f3e2c1a", "1")),
        ("MIG-4f1a", ("MIG-4f1a",)),
        ("0,bogus,1", ("0",)),  # and at the first entry it cannot read
    ],
)
def test_cuda_visible_entries(value: str | None, expected: tuple[str, ...] | None) -> None:
    assert cuda_visible_entries(value) == expected


def test_without_a_torch_device_every_visible_gpu_is_counted(
    fake_nvml: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake: FakeNvml = fake_nvml(count=4, energy_step_mj=1_000)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,0")
    sampler = NvmlSampler()
    sampler.start()
    assert _energies(sampler.stop()) == {"gpu-2": pytest.approx(3.0), "gpu-0": pytest.approx(1.0)}

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", f"{fake.uuid_of(3)},{fake.uuid_of(1)[:12]}")
    sampler.start()
    assert _energies(sampler.stop()) == {"gpu-3": pytest.approx(4.0), "gpu-1": pytest.approx(2.0)}

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    avail = sampler.available()
    assert not avail
    assert "CUDA_VISIBLE_DEVICES" in avail.reason


@pytest.mark.parametrize(
    ("visible", "device", "nvml_index"),
    [
        (None, "cuda:2", 2),
        (None, "cuda", 0),
        ("3,1", "cuda:0", 3),  # index form: cuda:N is the N-th entry
        ("3,1", "cuda:1", 1),
        ("uuid:2,uuid:0", "cuda:1", 0),  # UUID form
        ("uuid:2,uuid:0", "cuda:0", 2),
        ("prefix:3", "cuda", 3),  # a unique prefix of a UUID, as CUDA accepts
    ],
)
def test_the_model_gpu_is_measured_as_cuda_numbers_it(
    fake_nvml: Any,
    monkeypatch: pytest.MonkeyPatch,
    visible: str | None,
    device: str,
    nvml_index: int,
) -> None:
    fake: FakeNvml = fake_nvml(count=4, energy_step_mj=1_000)
    if visible is not None:
        entries = []
        for entry in visible.split(","):
            kind, _, index = entry.rpartition(":")
            if kind == "uuid":
                entries.append(fake.uuid_of(int(index)))
            elif kind == "prefix":
                entries.append(fake.uuid_of(int(index))[:13])
            else:
                entries.append(index)
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", ",".join(entries))
    sampler = NvmlSampler(torch_device=device)
    sampler.start()
    reading = sampler.stop()
    assert _energies(reading) == {f"gpu-{nvml_index}": pytest.approx(nvml_index + 1.0)}
    assert f"NVML {nvml_index}" in sampler.metadata()[f"gpu{nvml_index}_selected_as"]


def test_a_gpu_that_is_not_there_is_refused(
    fake_nvml: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding: ``cuda:1`` on a one-GPU machine measured GPU 0."""
    fake_nvml(count=1)
    avail = NvmlSampler(torch_device="cuda:1").available()
    assert not avail
    assert "does not exist" in avail.reason and "NVML sees 1 GPU" in avail.reason
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    avail = NvmlSampler(torch_device="cuda:1").available()
    assert not avail
    assert "there is no cuda:1" in avail.reason and "makes 1 GPU(s) visible" in avail.reason
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-ffffffff")
    avail = NvmlSampler(torch_device="cuda:0").available()
    assert not avail and "matches no GPU" in avail.reason
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-4f1a")
    avail = NvmlSampler(torch_device="cuda:0").available()
    assert not avail and "no energy per MIG instance" in avail.reason


@pytest.mark.parametrize("key", ["uuid", "pci"])
def test_torch_names_the_gpu_by_uuid_or_pci_bus_id(
    fake_nvml: Any, monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    """What torch says about cuda:0 wins over a CUDA_VISIBLE_DEVICES index in another order."""
    fake: FakeNvml = fake_nvml(count=4, energy_step_mj=1_000)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")  # CUDA's fastest-first order: not NVML 0
    seen: list[int] = []

    def identity(ordinal: int) -> cuda.DeviceIdentity:
        seen.append(ordinal)
        if key == "uuid":
            return cuda.DeviceIdentity(fake.uuid_of(2), None)
        return cuda.DeviceIdentity(None, "00000000:1c:00.0")  # bus 0x1c: NVML 2

    monkeypatch.setattr(cuda, "torch_identity", identity)
    sampler = NvmlSampler(torch_device="cuda:0")
    sampler.start()
    assert _energies(sampler.stop()) == {"gpu-2": pytest.approx(3.0)}
    assert seen and seen[0] == 0
    how = sampler.metadata()["gpu2_selected_as"]
    assert "from torch" in how and ("UUID" if key == "uuid" else "PCI bus id") in how


def test_device_indices_override_the_environment(
    fake_nvml: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where CUDA's order is only assumed, the indices are the fix for it, taken as given."""
    fake_nvml(count=4, energy_step_mj=1_000)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    sampler = NvmlSampler(device_indices=(3,), torch_device="cuda:0")
    sampler.start()
    assert _energies(sampler.stop()) == {"gpu-3": pytest.approx(4.0)}


@pytest.mark.parametrize("torch_uuid", ["MIG-4f1a2b3c-0000-5e1f-9b7d-0000000000a1", None])
def test_a_mig_slice_is_refused(
    fake_nvml: Any, monkeypatch: pytest.MonkeyPatch, torch_uuid: str | None
) -> None:
    """Finding: a MIG slice's identity resolved to its parent's PCI bus id, measured whole."""
    fake: FakeNvml = fake_nvml(count=2)
    fake.mig = {1}
    parent = cuda.DeviceIdentity(torch_uuid, fake.pci_of(1))
    monkeypatch.setattr(cuda, "torch_identity", lambda ordinal: parent)
    sampler = NvmlSampler(torch_device="cuda:0")
    avail = sampler.available()
    assert not avail
    assert "MIG" in avail.reason and "per physical GPU" in avail.reason
    assert "nothing else on it" in avail.reason and "sampler: estimate" in avail.reason
    with pytest.raises(BackendUnavailableError, match="MIG"):
        sampler.start()
    # Explicit indices do not get round it: the model's device is still a slice.
    assert not NvmlSampler(device_indices=(1,), torch_device="cuda:0").available()


def test_a_gpu_in_mig_mode_named_by_index_is_refused(
    fake_nvml: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake: FakeNvml = fake_nvml(count=1)
    fake.mig = {0}
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    avail = NvmlSampler(torch_device="cuda:0").available()
    assert not avail and "MIG" in avail.reason and "NVML 0" in avail.reason
    assert "nvidia-smi -i 0 -mig 0" in avail.reason


def test_a_gpu_without_mig_support_is_measured(fake_nvml: Any) -> None:
    fake: FakeNvml = fake_nvml(count=1)
    fake.unsupported = {"mig"}  # pre-Ampere: no MIG mode to ask about
    sampler = NvmlSampler(torch_device="cuda:0")
    sampler.start()
    assert sampler.stop().provenance is Provenance.MEASURED


def test_device_indices_without_the_model_gpu_are_refused(
    fake_nvml: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding: `device_indices: [1]` with the model on GPU 0 measured GPU 1 without a word."""
    fake: FakeNvml = fake_nvml(count=2, energy_step_mj=1_000)
    ident = cuda.DeviceIdentity(fake.uuid_of(0), None)
    monkeypatch.setattr(cuda, "torch_identity", lambda ordinal: ident)
    sampler = NvmlSampler(device_indices=(1,), torch_device="cuda:0")
    avail = sampler.available()
    assert not avail
    assert "device_indices" in avail.reason and "[1]" in avail.reason
    assert "cuda:0 = NVML 0" in avail.reason
    with pytest.raises(BackendUnavailableError, match="does not include"):
        sampler.start()
    assert fake.init_depth == 0


@pytest.mark.parametrize(
    ("indices", "expected"),
    [((0,), {"gpu-0": 1.0}), ((1, 0), {"gpu-1": 2.0, "gpu-0": 1.0})],
)
def test_device_indices_with_the_model_gpu_are_measured(
    fake_nvml: Any,
    monkeypatch: pytest.MonkeyPatch,
    indices: tuple[int, ...],
    expected: dict[str, float],
) -> None:
    fake: FakeNvml = fake_nvml(count=2, energy_step_mj=1_000)
    ident = cuda.DeviceIdentity(fake.uuid_of(0), None)
    monkeypatch.setattr(cuda, "torch_identity", lambda ordinal: ident)
    sampler = NvmlSampler(device_indices=indices, torch_device="cuda:0")
    sampler.start()
    reading = sampler.stop()
    assert _energies(reading) == {k: pytest.approx(v) for k, v in expected.items()}
    assert reading.provenance is Provenance.MEASURED


def test_device_indices_are_checked_when_the_order_is_exact(
    fake_nvml: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With CUDA_DEVICE_ORDER=PCI_BUS_ID, cuda:0 = CUDA_VISIBLE_DEVICES[0] = NVML 0 for sure."""
    fake_nvml(count=4)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    avail = NvmlSampler(device_indices=(3,), torch_device="cuda:0").available()
    assert not avail and "NVML 0" in avail.reason and "[3]" in avail.reason


def test_index_that_does_not_exist(fake_nvml: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = fake_nvml(count=2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,5")
    sampler = NvmlSampler()
    avail = sampler.available()
    assert not avail
    assert "GPU index 5" in avail.reason
    assert "NVML sees 2" in avail.reason
    with pytest.raises(BackendUnavailableError, match="GPU index 5"):
        sampler.start()
    assert fake.init_depth == 0  # the failed start shut NVML down again


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"device_indices": ()}, "device_indices"),
        ({"device_indices": (-1,)}, "non-negative"),
        ({"device_indices": (0, 0)}, "distinct"),
        ({"poll_interval_s": 0.0}, "positive"),
        ({"torch_device": "cpu"}, "model runs on 'cpu'"),
    ],
)
def test_bad_arguments_are_recipe_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(RecipeError, match=match):
        NvmlSampler(**kwargs)


# --- lifecycle ---------------------------------------------------------------------------------


def test_init_and_shutdown_are_balanced(fake_nvml: Any) -> None:
    fake = fake_nvml()
    sampler = NvmlSampler()
    sampler.available()
    assert fake.init_depth == 0
    sampler.metadata()
    assert fake.init_depth == 0
    sampler.start()
    assert fake.init_depth == 1  # held for the window
    with pytest.raises(MeasurementError, match="started twice"):
        sampler.start()
    assert fake.init_depth == 1
    sampler.stop()
    assert fake.init_depth == 0
    with pytest.raises(MeasurementError, match="before it was started"):
        sampler.stop()
    assert fake.inits >= 3


def test_cuda_is_synchronised_at_both_edges(
    fake_nvml: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_nvml()
    events: list[str] = []
    cuda = types.SimpleNamespace(
        is_available=lambda: True,
        is_initialized=lambda: True,
        synchronize=lambda: events.append("sync"),
    )
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    sampler = NvmlSampler()
    sampler.start()
    assert events == ["sync"]
    sampler.stop()
    assert events == ["sync", "sync"]


def test_the_model_device_is_synchronised(fake_nvml: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_nvml(count=2)
    events: list[object] = []
    cuda_ns = types.SimpleNamespace(
        is_available=lambda: True,
        is_initialized=lambda: True,
        synchronize=lambda device=None: events.append(device),
    )
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda_ns))
    monkeypatch.setattr(cuda, "torch_identity", lambda ordinal: None)
    sampler = NvmlSampler(torch_device="cuda:1")
    sampler.start()
    sampler.stop()
    assert events == ["cuda:1", "cuda:1"]  # not the current device: the model's


def test_no_synchronisation_when_cuda_is_unused(
    fake_nvml: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_nvml()

    def must_not_sync() -> None:
        raise AssertionError("synchronize() on a process that never initialised CUDA")

    cuda = types.SimpleNamespace(
        is_available=lambda: True, is_initialized=lambda: False, synchronize=must_not_sync
    )
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    sampler = NvmlSampler()
    sampler.start()
    assert sampler.stop().energy_j > 0


def test_power_limit_is_set_for_the_block_and_restored(fake_nvml: Any) -> None:
    from compresslab.energy.nvml_power_limit import power_limit

    fake = fake_nvml(count=2)
    with power_limit(200.0):
        assert fake.limits_mw == [200_000, 200_000]
    assert fake.limits_mw == [300_000, 300_000]
    assert fake.limit_history == [(0, 200_000), (1, 200_000), (1, 300_000), (0, 300_000)]


def test_power_limit_is_restored_when_the_block_raises(fake_nvml: Any) -> None:
    from compresslab.energy.nvml_power_limit import power_limit

    fake = fake_nvml()
    with pytest.raises(RuntimeError, match="boom"), power_limit(150.0):
        assert fake.limits_mw == [150_000]
        raise RuntimeError("boom")
    assert fake.limits_mw == [300_000]


def test_power_limit_out_of_range_or_without_permission(fake_nvml: Any) -> None:
    from compresslab.energy.nvml_power_limit import power_limit
    from compresslab.errors import BackendUnavailableError, RecipeError

    fake = fake_nvml()
    with pytest.raises(RecipeError, match="from 100 W to 300 W"), power_limit(50.0):
        pass
    fake.may_set_limit = False
    with pytest.raises(BackendUnavailableError, match="needs root"), power_limit(200.0):
        pass
    assert fake.limits_mw == [300_000]
