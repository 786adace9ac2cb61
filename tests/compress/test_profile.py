from __future__ import annotations

import torch
from torch import nn

from compresslab.compress import CompressContext, Step, VariantSpec, build_variant
from compresslab.compress.profile import count_macs, count_params, profile_model


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
