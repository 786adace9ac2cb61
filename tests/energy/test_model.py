from __future__ import annotations

import pytest
import torch
from torch import nn

from compresslab.compress import CompressContext, Step, VariantSpec, build_variant
from compresslab.energy import Provenance
from compresslab.energy.model import ModelSampler
from compresslab.errors import MeasurementError
from compresslab.modeled.costs import HOROWITZ_45NM, modeled_j_per_inference
from compresslab.modeled.ops import count_ops
from compresslab.protocol import Protocol, measure_model


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 4))


def test_counts_macs_bytes_by_format() -> None:
    x = torch.randn(8, 32)
    counts = count_ops(_net(), x)
    assert counts.macs == {"fp32": 32 * 64 + 64 * 4}
    assert counts.weight_bytes == 4 * (32 * 64 + 64 + 64 * 4 + 4)
    assert counts.activation_bytes_per_example == 4 * (64 + 4)
    assert counts.input_bytes_per_example == 4 * 32


def test_int8_and_bf16_layers_are_priced_lower() -> None:
    x = torch.randn(8, 32)
    net = _net()
    ctx = CompressContext(example_inputs=x)
    q = build_variant(net, VariantSpec((Step("dynamic_int8"),)), ctx)
    b = build_variant(net, VariantSpec((Step("bf16"),)), ctx)
    assert set(count_ops(q, x).macs) == {"int8"}
    assert set(count_ops(b, x).macs) == {"bf16"}

    def total(m: nn.Module) -> float:
        return sum(modeled_j_per_inference(count_ops(m, x), batch_size=8).values())

    assert total(q) < total(b) < total(net)


def test_weights_are_amortised_over_the_batch() -> None:
    counts = count_ops(_net(), torch.randn(2, 32))
    small = modeled_j_per_inference(counts, batch_size=1)
    large = modeled_j_per_inference(counts, batch_size=256)
    assert large["dram"] < small["dram"]
    assert large["compute"] == small["compute"]
    expected_compute = (32 * 64 + 64 * 4) * HOROWITZ_45NM.pj_per_mac["fp32"] * 1e-12
    assert small["compute"] == pytest.approx(expected_compute)


FAST = Protocol(warmup_s=0.0, window_s=0.02, min_windows=3, max_windows=3)


def test_modeled_measurement_is_exact_run_to_run() -> None:
    x = torch.randn(16, 32)
    net = _net()
    a = measure_model(net, x, sampler=ModelSampler(), protocol=FAST)
    b = measure_model(net, x, sampler=ModelSampler(), protocol=FAST)
    assert a.provenance == Provenance.MODELED
    # Identical up to float rounding of (joules x calls) / calls.
    assert a.energy_j_per_inference == pytest.approx(b.energy_j_per_inference, rel=1e-12)
    assert a.ci95_j_per_inference == pytest.approx(0.0, abs=1e-18)
    per = modeled_j_per_inference(count_ops(net, x), batch_size=16)
    assert a.energy_j_per_inference == pytest.approx(sum(per.values()))
    assert set(a.component_provenance.values()) == {"modeled"}


def test_unbound_model_sampler_says_how_to_fix() -> None:
    with pytest.raises(MeasurementError, match="bind"):
        ModelSampler().start()


def test_unbind_stops_counting() -> None:
    x = torch.randn(4, 32)
    net = _net()
    s = ModelSampler()
    s.bind(net, x)
    s.unbind()
    s.start()
    net(x)
    with pytest.raises(MeasurementError, match="0 J"):
        s.stop()
