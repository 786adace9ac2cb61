from __future__ import annotations

import torch
from torch import nn

from compresslab.compress import CompressContext, Step, VariantSpec, build_variant
from compresslab.compress.profile import (
    count_macs,
    count_params,
    memory_bytes,
    profile_model,
    weight_sparsity,
)


def test_macs_match_the_formula() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),  # 4x4 out: 16 * 8 * 3 * 9
        nn.Flatten(),
        nn.Linear(8 * 16, 5),  # 128 * 5
    )
    x = torch.randn(4, 3, 4, 4)
    assert count_macs(model, x) == 16 * 8 * 3 * 9 + 128 * 5
    assert count_params(model) == sum(p.numel() for p in model.parameters())


def test_grouped_convolution_macs() -> None:
    model = nn.Conv2d(8, 8, 3, padding=1, groups=8)
    assert count_macs(model, torch.randn(2, 8, 5, 5)) == 25 * 8 * 1 * 9


def test_quantized_linear_layers_are_still_counted() -> None:
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    x = torch.randn(3, 16)
    q = build_variant(model, VariantSpec((Step("dynamic_int8"),)), CompressContext(x))
    assert count_macs(q, x) == count_macs(model, x) == 16 * 32 + 32 * 4
    assert count_params(q) >= 16 * 32 + 32 * 4
    assert profile_model(q, x).size_bytes < profile_model(model, x).size_bytes


def test_memory_bytes_counts_parameters_and_buffers_once() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Flatten(), nn.Linear(8, 4))
    expected = sum(p.numel() * 4 for p in model.parameters())
    expected += sum(b.numel() * b.element_size() for b in model.buffers())  # incl. int64 counter
    assert memory_bytes(model) == expected
    tied = nn.Sequential(nn.Linear(6, 6, bias=False), nn.Linear(6, 6, bias=False))
    tied[1].weight = tied[0].weight
    assert memory_bytes(tied) == 36 * 4


def test_memory_bytes_of_dynamic_int8_counts_packed_weights() -> None:
    model = nn.Sequential(nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 4))
    x = torch.randn(2, 256)
    q = build_variant(model, VariantSpec((Step("dynamic_int8"),)), CompressContext(x))
    float_bytes = memory_bytes(model)
    weights = 256 * 128 + 128 * 4
    # int8 weights (1 byte each) plus float biases and a few scales.
    assert weights <= memory_bytes(q) < weights + (128 + 4) * 4 + 200
    assert memory_bytes(q) < float_bytes / 3.5


def test_sparsity_counts_zero_weights_not_biases() -> None:
    model = nn.Sequential(nn.Linear(10, 10), nn.Linear(10, 10))
    with torch.no_grad():
        model[0].weight[:5] = 0.0
        model[1].bias.zero_()
    x = torch.randn(2, 10)
    assert weight_sparsity(model) == 50 / 200
    prof = profile_model(model, x)
    assert prof.sparsity == 0.25
    assert prof.memory_bytes == (200 + 20) * 4
    assert weight_sparsity(nn.ReLU()) == 0.0
