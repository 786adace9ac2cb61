"""What this machine offers compression: device, CPU features, dtypes and optional libraries.

:func:`capabilities` gathers the facts a report needs to explain why a method ran, was left
out, or was slower than expected (e.g. bf16 without native bf16 instructions). Every figure is
probed here, on this machine: CPU flags from ``/proc/cpuinfo``, libraries by importing them.
"""

from __future__ import annotations

import importlib
import importlib.util
import platform
from typing import Any

import torch

from compresslab.machine import cpu_flags, cpu_model
from compresslab.versions import version_of

#: Optional libraries: import name -> distribution name.
LIBRARIES = {
    "torch_pruning": "torch-pruning",
    "bitsandbytes": "bitsandbytes",
    "torchao": "torchao",
    "transformers": "transformers",
    "safetensors": "safetensors",
}


def _bf16_runs() -> bool:
    try:
        a = torch.ones(4, 4, dtype=torch.bfloat16)
        return bool(torch.equal((a @ a).float(), torch.full((4, 4), 4.0)))
    except RuntimeError:
        return False


def _installed(name: str) -> dict[str, Any]:
    """Whether a library is installed, and its version, without importing it (fast)."""
    try:
        found = importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        return {"installed": False, "version": None}
    return {"installed": True, "version": version_of(LIBRARIES[name])}


def _library(name: str) -> dict[str, Any]:
    try:
        if name == "bitsandbytes":
            from compresslab.compress.bnb import bitsandbytes

            module = bitsandbytes()
        elif name == "torchao":
            from compresslab.compress.ao import torchao_quantization

            torchao_quantization()
            module = importlib.import_module("torchao")
        else:
            module = importlib.import_module(name)
    except Exception as e:  # a broken install fails in many ways; report it, never raise
        return {"imports": False, "version": None, "error": f"{type(e).__name__}: {e}"[:300]}
    # The distribution's version (torch-pruning 1.6.1 says 1.6.0 in __version__).
    version = version_of(LIBRARIES[name]) or str(getattr(module, "__version__", "unknown"))
    return {"imports": True, "version": version}


def capabilities(*, import_libraries: bool = True) -> dict[str, Any]:
    """Facts about this machine that decide which compression methods run, and how fast.

    Args:
        import_libraries: import each optional library to prove it loads (seconds for
            bitsandbytes); False reports only whether it is installed and its version.

    Returns:
        A JSON-able dict: ``device`` (``cuda`` when a CUDA device is usable, else ``cpu``),
        ``cpu`` (model, torch's CPU capability such as ``AVX512``, the flags in
        :data:`CPU_FLAGS` or None off Linux), ``torch`` (version, whether bf16 kernels run,
        whether oneDNN has native bf16, quantized engines), ``cuda`` (device name and bf16
        support, or None) and ``libraries`` (for each of :data:`LIBRARIES`: whether it
        imports, its version, and the error if not).
    """
    flags = cpu_flags()
    cuda: dict[str, Any] | None = None
    if torch.cuda.is_available():
        cuda = {
            "name": torch.cuda.get_device_name(0),
            "capability": ".".join(map(str, torch.cuda.get_device_capability(0))),
            "bf16": bool(torch.cuda.is_bf16_supported()),
        }
    mkldnn_bf16 = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return {
        "device": "cuda" if cuda else "cpu",
        "cpu": {
            "model": cpu_model(),
            "machine": platform.machine(),
            "torch_capability": torch.backends.cpu.get_cpu_capability(),
            "flags": flags,
        },
        "torch": {
            "version": torch.__version__,
            "bf16_runs": _bf16_runs(),
            "bf16_native": bool(mkldnn_bf16()) if callable(mkldnn_bf16) else None,
            "quantized_engines": list(torch.backends.quantized.supported_engines),
            "quantized_engine": torch.backends.quantized.engine,
        },
        "cuda": cuda,
        "libraries": {
            name: _library(name) if import_libraries else _installed(name) for name in LIBRARIES
        },
    }
