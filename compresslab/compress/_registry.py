"""The registry: every compression method by the name a recipe uses."""

from __future__ import annotations

from collections.abc import Iterable

from compresslab.availability import Availability
from compresslab.compress.ao import TorchaoInt8Dynamic, TorchaoInt8WeightOnly
from compresslab.compress.base import CompressionMethod
from compresslab.compress.bnb import Bnb4bit, BnbInt8
from compresslab.compress.llm_prune import LlmPruning
from compresslab.compress.precision import Bf16, Fp16
from compresslab.compress.prune import ChannelPruning, HeadPruning
from compresslab.compress.quantize import DynamicInt8
from compresslab.compress.sparsify import MagnitudeSparsity
from compresslab.errors import VariantError

#: Every method by the name a recipe uses.
METHODS: dict[str, CompressionMethod] = {
    m.name: m
    for m in (
        ChannelPruning(),
        HeadPruning(),
        LlmPruning(),
        MagnitudeSparsity(),
        DynamicInt8(),
        BnbInt8(),
        Bnb4bit(),
        TorchaoInt8WeightOnly(),
        TorchaoInt8Dynamic(),
        Bf16(),
        Fp16(),
    )
}


def get_method(name: str) -> CompressionMethod:
    """The registered method called ``name``."""
    try:
        return METHODS[name]
    except KeyError:
        raise VariantError(
            f"unknown compression method '{name}': use one of {', '.join(METHODS)}"
        ) from None


def probe_methods(names: Iterable[str]) -> dict[str, Availability]:
    """Whether each named method can run on this machine (before any trial)."""
    return {n: get_method(n).available() for n in names}
