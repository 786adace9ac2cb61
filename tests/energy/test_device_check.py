"""``benchmarks/device_check.py`` on a machine without a GPU: it skips what it cannot check,
says why, runs what it can (RAPL here, on a fake tree), and exits 0."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest
import torch

from compresslab.energy.rapl_tree import ROOT_ENV

pytestmark = pytest.mark.slow

if TYPE_CHECKING:
    from conftest import ClockCounters, PowercapTree

REPO = Path(__file__).resolve().parents[2]


def _script(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "device_check", REPO / "benchmarks" / "device_check.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "device_check", module)  # dataclasses look it up
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: the script checks it")
def test_without_a_gpu_it_skips_with_reasons_and_checks_rapl(
    powercap: PowercapTree,
    clock_counters: ClockCounters,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    powercap.add_zone("intel-rapl:0", "package-0", max_power_uw=125_000_000)
    clock_counters.attach(powercap, "intel-rapl:0", power_w=10.0, busy_w=30.0)
    monkeypatch.setenv(ROOT_ENV, str(powercap.root))
    out = tmp_path / "check.json"
    assert _script(monkeypatch).main(["--quick", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["gpu_digits"]["status"] == "SKIP"
    assert checks["nvml_counter_vs_power"]["status"] == "SKIP"
    assert "CPU-only build" in checks["gpu_digits"]["summary"]
    rapl = checks["rapl_digits"]
    assert rapl["status"] == "PASS", rapl["summary"]
    base = rapl["figures"]["baseline"]
    assert base["component_provenance"] == {"cpu-package-0": "measured"}
    assert base["model_device"] == "cpu" and base["idle_power_w"] > 0
    assert "dynamic_int8" in rapl["figures"]
    assert "estimate_digits" not in checks  # RAPL was checked
    assert report["verdict"] == "PASS"
    err = capsys.readouterr().err
    assert "SKIP  gpu_digits" in err and "PASS  rapl_digits" in err
