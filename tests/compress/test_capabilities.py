"""The machine's compression capabilities, as the report shows them."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from compresslab.compress import capabilities
from compresslab.machine import CPU_FLAGS, cpu_flags


def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\nmodel name\t: Test CPU\n"
        "flags\t\t: fpu sse avx2 fma avx512f avx512_bf16 amx_tile amx_bf16\n\n"
        "processor\t: 1\nflags\t\t: fpu\n"
    )
    flags = cpu_flags(info)
    assert flags is not None
    assert set(flags) == set(CPU_FLAGS)
    assert flags["avx2"] and flags["avx512f"] and flags["avx512_bf16"] and flags["amx_bf16"]
    assert not flags["avx512_vnni"] and not flags["amx_int8"]
    assert cpu_flags(tmp_path / "missing") is None
    (tmp_path / "noflags").write_text("processor\t: 0\n")
    assert cpu_flags(tmp_path / "noflags") is None


def test_capabilities_describe_this_machine() -> None:
    caps = capabilities()
    json.dumps(caps)  # JSON-able for the report
    assert caps["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert caps["torch"]["version"] == torch.__version__
    assert caps["torch"]["bf16_runs"] is True
    assert torch.backends.quantized.engine == caps["torch"]["quantized_engine"]
    libs = caps["libraries"]
    assert set(libs) == {"torch_pruning", "bitsandbytes", "torchao", "transformers", "safetensors"}
    for name, lib in libs.items():
        assert lib["imports"], (name, lib)
        assert lib["version"][0].isdigit(), (name, lib)
    if Path("/proc/cpuinfo").is_file() and caps["cpu"]["machine"] == "x86_64":
        assert caps["cpu"]["flags"] is not None
