"""The machine's compression capabilities, as the report shows them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from compresslab.compress import capabilities
from compresslab.compress.capabilities import LIBRARIES
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


def _bf16_matmul_works() -> bool:
    """Independently of the package: does a bf16 matmul run here and give the fp32 answer?"""
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(8, 16, generator=gen), torch.randn(16, 8, generator=gen)
    try:
        got = (a.to(torch.bfloat16) @ b.to(torch.bfloat16)).float()
    except RuntimeError:
        return False
    return bool(torch.allclose(got, a @ b, rtol=0.05, atol=0.1))


def _cpuinfo_flags() -> set[str] | None:
    """The first ``flags`` line of /proc/cpuinfo, parsed here rather than by the package."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return None


def _import_in_a_fresh_interpreter(names: list[str]) -> dict[str, str]:
    """Import each module in a new Python; returns name -> "ok" or the error."""
    code = (
        "import importlib, json, sys\n"
        "out = {}\n"
        "for n in sys.argv[1:]:\n"
        "    try:\n"
        "        importlib.import_module(n); out[n] = 'ok'\n"
        "    except Exception as e:\n"
        "        out[n] = repr(e)\n"
        "print('RESULT', json.dumps(out))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *names], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


@pytest.mark.slow
def test_capabilities_agree_with_what_this_machine_does() -> None:
    caps = capabilities()
    assert json.loads(json.dumps(caps)) == caps  # JSON-able for the report, nothing lost
    assert caps["device"] in ("cpu", "cuda")
    assert (caps["device"] == "cuda") == (caps["cuda"] is not None)
    assert caps["torch"]["bf16_runs"] is _bf16_matmul_works()
    assert caps["torch"]["bf16_native"] in (True, False, None)
    engines = caps["torch"]["quantized_engines"]
    assert caps["torch"]["quantized_engine"] in engines
    if caps["cpu"]["machine"] == "x86_64":  # dynamic int8 needs an x86 engine here
        assert {"x86", "fbgemm"} & set(engines), engines
    present = _cpuinfo_flags()
    if present is None:
        assert caps["cpu"]["flags"] is None
    else:
        assert caps["cpu"]["flags"] == {f: f in present for f in CPU_FLAGS}

    libs = caps["libraries"]
    assert set(libs) == set(LIBRARIES)
    importing = [name for name, lib in libs.items() if lib["imports"]]
    for name, lib in libs.items():
        if lib["imports"]:
            assert re.match(r"^\d+(\.\d+)+", lib["version"]), (name, lib)
        else:
            assert lib["version"] is None and lib["error"], (name, lib)
    # What is reported as importing really imports, in an interpreter the probe never touched.
    assert _import_in_a_fresh_interpreter(importing) == dict.fromkeys(importing, "ok")
    # The fast mode (no imports) finds the same libraries at the same versions.
    fast = capabilities(import_libraries=False)["libraries"]
    for name in importing:
        assert fast[name] == {"installed": True, "version": libs[name]["version"]}, name


def test_bf16_is_reported_missing_where_its_kernels_are(monkeypatch: pytest.MonkeyPatch) -> None:
    """The other path: a torch build or CPU without bf16 matmul kernels."""
    real = torch.Tensor.__matmul__

    def no_bf16(self: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        if torch.bfloat16 in (self.dtype, other.dtype):
            raise RuntimeError("\"addmm_impl_cpu_\" not implemented for 'BFloat16'")
        return real(self, other)

    monkeypatch.setattr(torch.Tensor, "__matmul__", no_bf16)
    assert capabilities(import_libraries=False)["torch"]["bf16_runs"] is False
    assert _bf16_matmul_works() is False
    monkeypatch.undo()
    assert capabilities(import_libraries=False)["torch"]["bf16_runs"] is _bf16_matmul_works()
