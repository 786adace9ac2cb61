"""torchao int8 quantization of linear layers (the optional extra ``compresslab[torchao]``).

``torchao_int8_weight_only``: int8 weights with per-channel scales, float activations.
``torchao_int8_dynamic``: int8 weights and per-token dynamically quantized int8 activations.
Both call ``torchao.quantization.quantize_`` with ``Int8WeightOnlyConfig`` or
``Int8DynamicActivationInt8WeightConfig``. The classifier and ``keep_layers`` stay float32 by
default, as with the bitsandbytes methods.

torchao's int4 weight-only path is not offered: on CPU it needs the ``mslk`` kernel package
("Requires mslk >= 1.0.0" with torchao 0.18), which is not available for this lab's CPUs.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from compresslab.availability import Availability
from compresslab.compress.base import CompressContext, CompressionMethod, ParamDef
from compresslab.compress.layers import linear_targets
from compresslab.errors import VariantError

_INSTALL = "pip install 'compresslab[torchao]'"


@contextlib.contextmanager
def _quiet_import() -> Iterator[None]:
    """Mute torchao's import-time log lines about CUDA-only extensions (restored after)."""
    loggers = [logging.getLogger(n) for n in ("torchao", "torch.utils._pytree")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def torchao_quantization() -> Any:
    """``torchao.quantization``, imported on first use.

    Raises:
        ImportError: torchao is not installed.
    """
    with _quiet_import():
        import torchao.quantization as q

    return q


def _config(kind: str) -> Any:
    q = torchao_quantization()
    if kind == "weight_only":
        return q.Int8WeightOnlyConfig()
    return q.Int8DynamicActivationInt8WeightConfig()


def _quantize(model: nn.Module, kind: str, targets: Sequence[nn.Module]) -> None:
    ids = {id(m) for m in targets}
    q = torchao_quantization()
    with _quiet_import():
        q.quantize_(model, _config(kind), filter_fn=lambda m, _fqn: id(m) in ids)


@functools.cache
def probe(kind: str) -> Availability:
    """Whether torchao's int8 ``kind`` quantizes and runs a tiny linear layer here."""
    try:
        torchao_quantization()
        import torchao
    except ImportError as e:
        return Availability(False, f"torchao is not installed ({e}): {_INSTALL}")
    try:
        gen = torch.Generator().manual_seed(0)
        lin = nn.Linear(64, 16)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(16, 64, generator=gen) * 0.1)
        x = torch.randn(4, 64, generator=gen)
        model = nn.Sequential(lin)
        with torch.inference_mode():
            ref = model(x)
        _quantize(model, kind, [lin])
        with torch.inference_mode():
            out = model(x)
    except Exception as e:  # a missing kernel shows up as any kind of error
        return Availability(
            False, f"torchao {torchao.__version__} cannot run int8 {kind} here ({e})"
        )
    err = float((out - ref).abs().max() / ref.abs().max())
    if out.shape != ref.shape or not err < 0.1:
        return Availability(False, f"torchao {torchao.__version__} int8 {kind} is wrong here")
    return Availability(True, f"torchao {torchao.__version__} int8 {kind} ran here")


class _TorchaoInt8(CompressionMethod):
    stage = "quantize"
    kind: ClassVar[str]
    params: ClassVar[Mapping[str, ParamDef]] = {
        "keep_classifier": ParamDef(
            "bool", True, doc="leave the classifier (and keep_layers) in float32"
        ),
    }

    def available(self) -> Availability:
        """Probes torchao on a tiny linear layer (import, quantize, run)."""
        return probe(self.kind)

    def apply(self, model: nn.Module, params: Mapping[str, Any], ctx: CompressContext) -> nn.Module:
        """Quantize every (non-kept) ``nn.Linear`` in place with torchao's ``quantize_``."""
        keep_classifier = bool(params["keep_classifier"])
        targets = [m for _, m in linear_targets(model, ctx, keep_classifier=keep_classifier)]
        try:
            _quantize(model, self.kind, targets)
        except ImportError as e:
            raise VariantError(f"torchao is not installed ({e}): {_INSTALL}") from e
        except (RuntimeError, ValueError, NotImplementedError) as e:
            raise VariantError(f"torchao could not quantize this model: {e}") from e
        return model


class TorchaoInt8WeightOnly(_TorchaoInt8):
    """int8 weights, float activations (torchao)."""

    name = "torchao_int8_weight_only"
    summary = "torchao Int8WeightOnlyConfig on Linear layers"
    kind = "weight_only"


class TorchaoInt8Dynamic(_TorchaoInt8):
    """int8 weights and dynamically quantized int8 activations (torchao)."""

    name = "torchao_int8_dynamic"
    summary = "torchao Int8DynamicActivationInt8WeightConfig on Linear layers"
    kind = "dynamic"
