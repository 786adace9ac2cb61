"""One contract every energy sampler honours, run against each of them.

``estimate`` runs on this machine for real; ``rapl`` reads a fake powercap tree whose package
counter advances while the window is open; ``nvml`` runs on the fake NVML, once with the energy
counter and once with integrated power polling; ``model`` counts the calls of a small network.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
import torch

from compresslab.energy import Provenance, Sampler
from compresslab.energy.estimate import EstimateSampler
from compresslab.energy.model import ModelSampler
from compresslab.energy.nvml import NvmlSampler
from compresslab.energy.rapl import RaplSampler
from compresslab.errors import MeasurementError

if TYPE_CHECKING:
    from conftest import PowercapTree


@dataclass
class Case:
    sampler: Sampler
    #: What runs inside a window: the work whose energy the sampler must see.
    work: Callable[[], None]
    #: Provenances a component may carry besides the sampler's own (documented in its module).
    also_allowed: frozenset[Provenance] = frozenset()


def _busy_cpu(min_cpu_s: float = 0.03) -> None:
    """Burn CPU until the process clock has moved (it advances in ticks, not continuously)."""
    start_s = time.process_time()
    x = 0
    while time.process_time() - start_s < min_cpu_s:
        x += sum(range(1000))
    assert x > 0


# The fake NVML's work sleeps: its counters and its power poll run on the real clock.
@pytest.fixture(
    params=[
        "estimate",
        "rapl",
        pytest.param("nvml", marks=pytest.mark.slow),
        pytest.param("nvml-integrated", marks=pytest.mark.slow),
        "model",
    ]
)
def case(request: pytest.FixtureRequest, intel_tree: PowercapTree, fake_nvml: Any) -> Case:
    if request.param == "estimate":
        return Case(EstimateSampler(), _busy_cpu)
    if request.param == "model":
        net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
        x = torch.randn(4, 8)
        sampler = ModelSampler()
        sampler.bind(net, x)
        return Case(sampler, lambda: net(x))
    if request.param == "rapl":
        return Case(
            RaplSampler(root=intel_tree.root),
            lambda: intel_tree.advance("intel-rapl:0", 3_000_000),
        )
    if request.param == "nvml":
        fake_nvml()
        return Case(NvmlSampler(), lambda: time.sleep(0.01))
    fake_nvml(energy_counter=False)
    return Case(
        NvmlSampler(poll_interval_s=0.005),
        lambda: time.sleep(0.02),
        also_allowed=frozenset({Provenance.INTEGRATED}),
    )


def _window(case: Case):
    case.sampler.start()
    case.work()
    return case.sampler.stop()


class TestSamplerContract:
    def test_is_a_sampler_with_a_registry_name(self, case: Case) -> None:
        assert isinstance(case.sampler, Sampler)
        assert case.sampler.name in ("estimate", "rapl", "nvml", "model")
        assert isinstance(case.sampler.provenance, Provenance)

    def test_available_with_a_reason(self, case: Case) -> None:
        avail = case.sampler.available()
        assert avail
        assert avail.available is True
        assert avail.reason.strip()

    def test_window_gives_positive_energy_and_duration(self, case: Case) -> None:
        reading = _window(case)
        assert reading.energy_j > 0
        assert reading.duration_s > 0
        assert reading.components
        allowed = {case.sampler.provenance} | case.also_allowed
        for component in reading.components:
            assert component.provenance in allowed, component
            assert component.energy_j >= 0
        assert all(isinstance(v, float | int) for v in reading.details.values())

    def test_metadata_is_a_non_empty_str_to_str_dict(self, case: Case) -> None:
        meta = case.sampler.metadata()
        assert isinstance(meta, dict)
        assert meta
        assert all(isinstance(k, str) and isinstance(v, str) and v for k, v in meta.items())

    def test_update_period_is_positive(self, case: Case) -> None:
        assert case.sampler.update_period_s() > 0

    def test_stop_without_start_is_a_measurement_error(self, case: Case) -> None:
        with pytest.raises(MeasurementError):
            case.sampler.stop()

    def test_can_be_reused_for_a_second_window(self, case: Case) -> None:
        first = _window(case)
        second = _window(case)
        assert first.energy_j > 0
        assert second.energy_j > 0
        with pytest.raises(MeasurementError):
            case.sampler.stop()  # the second window is closed too
