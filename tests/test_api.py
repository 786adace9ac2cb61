from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml
from tests_support import FAST_ENERGY, run_cli, small
from torch import nn

import compresslab
from compresslab.carbon import INTENSITY_G_PER_KWH, carbon_settings
from compresslab.errors import MeasurementError, RecipeError
from compresslab.protocol import Protocol, ci95_halfwidth, t95
from compresslab.protocol.repeatability import UNKNOWN
from compresslab.records import EnergyResult


@pytest.mark.slow
def test_measure_json_reports_an_estimated_figure_with_its_ci(
    tmp_path: Path, hidden_rapl: Path
) -> None:
    recipe = tmp_path / "r.yaml"
    energy = {**FAST_ENERGY, "sampler": "auto", "min_windows": 3, "max_windows": 3}
    recipe.write_text(yaml.safe_dump(small(tmp_path, energy=energy)))
    proc = run_cli("measure", str(recipe), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    for key in (
        "energy_j_per_inference",
        "ci95_j_per_inference",
        "provenance",
        "sampler",
        "n_inferences",
        "windows",
    ):
        assert key in out, key
    assert out["provenance"] == "estimated" and out["sampler"] == "estimate"
    assert out["energy_j_per_inference"] > 0
    assert out["windows"] == 3 and out["n_inferences"] >= 3 * 32
    assert len(out["window_j_per_inference"]) == 3
    assert out["ci95_j_per_inference"] == pytest.approx(
        ci95_halfwidth(out["window_j_per_inference"])
    )
    # Nothing learnt on this machine yet: the interval is the windows', and says so.
    assert out["ci95_windows_j_per_inference"] == out["ci95_j_per_inference"]
    assert out["repeatability_rel"] is None and out["repeatability_source"] == UNKNOWN
    assert out["variant"] == "baseline"
    assert out["modeled_j_per_inference"] > 0
    # auto tried RAPL first and fell back: the host's counters are hidden (an empty root).
    assert "rapl: not used (no RAPL package zone" in out["selection"]
    assert str(hidden_rapl) in out["selection"]


@pytest.mark.slow
def test_measure_json_widens_by_what_a_study_here_taught(tmp_path: Path) -> None:
    from compresslab.protocol.repeatability import RepeatabilityStore, tier_of

    tier = tier_of("estimate", "estimated")
    RepeatabilityStore().record_study(key="db#d", label="study d", tier=tier, cv=0.04, n=12)
    recipe = tmp_path / "r.yaml"
    energy = {**FAST_ENERGY, "sampler": "estimate", "min_windows": 3, "max_windows": 3}
    recipe.write_text(yaml.safe_dump(small(tmp_path, energy=energy)))
    proc = run_cli("measure", str(recipe), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    windows = out["ci95_windows_j_per_inference"]
    assert windows == pytest.approx(ci95_halfwidth(out["window_j_per_inference"]))
    assert out["repeatability_rel"] == pytest.approx(t95(11) * 0.04 * (1 + 1 / 12) ** 0.5)
    assert out["ci95_j_per_inference"] == pytest.approx(
        math.hypot(windows, out["repeatability_rel"] * out["energy_j_per_inference"])
    )
    assert out["repeatability_source"].startswith("12 baseline measurements of study d, ")
    assert "on this machine" in out["repeatability_source"]
    # ... and the measurement joined this model's history, for the next ones.
    stored = json.loads(RepeatabilityStore().path.read_text())["tiers"][tier]["workloads"]
    (history,) = stored.values()
    assert history["label"] == "small: baseline"
    assert history["values_j"] == [out["energy_j_per_inference"]]


@pytest.fixture
def advancing_powercap(tmp_path: Path) -> Iterator[Path]:
    """A powercap tree whose package counter advances at about 20 W, as a real one would."""
    root = tmp_path / "powercap"
    zone = root / "intel-rapl:0"
    zone.mkdir(parents=True)
    (zone / "name").write_text("package-0\n")
    (zone / "max_energy_range_uj").write_text("262143328850\n")
    energy = zone / "energy_uj"
    energy.write_text("1000\n")
    stop = threading.Event()

    def advance() -> None:
        value = 1000
        while not stop.is_set():
            value += 20_000  # 20 mJ per ms = 20 W
            tmp = zone / "energy_uj.tmp"
            tmp.write_text(f"{value}\n")
            os.replace(tmp, energy)
            time.sleep(0.001)

    thread = threading.Thread(target=advance, daemon=True)
    thread.start()
    yield root
    stop.set()
    thread.join()


@pytest.mark.slow
def test_measure_json_on_a_fake_powercap_tree_is_measured(
    tmp_path: Path, advancing_powercap: Path
) -> None:
    recipe = tmp_path / "r.yaml"
    energy = {**FAST_ENERGY, "sampler": "auto", "idle_s": 0}
    recipe.write_text(yaml.safe_dump(small(tmp_path, energy=energy)))
    proc = run_cli(
        "measure", str(recipe), "--json", env={"COMPRESSLAB_POWERCAP_ROOT": str(advancing_powercap)}
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["sampler"] == "rapl"
    assert out["provenance"] == "measured"
    assert out["component_provenance"] == {"cpu-package-0": "measured"}
    assert out["energy_j_per_inference"] > 0
    assert "rapl: used" in out["selection"]


def test_measure_block_context_manager() -> None:
    x = torch.randn(64, 128)
    w = torch.randn(128, 128)
    with compresslab.measure_block(sampler="estimate", inferences=64) as m:
        t0 = time.process_time()
        while time.process_time() - t0 < 0.05:
            x @ w
    assert m.provenance == "estimated"
    assert m.energy_j > 0
    assert m.energy_j_per_inference == pytest.approx(m.energy_j / 64)
    d = m.to_dict()
    assert set(d["components"]) == {"cpu", "memory"}
    assert all(c["provenance"] == "estimated" for c in d["components"].values())


def test_measure_block_refuses_the_model_tier() -> None:
    with (
        pytest.raises(MeasurementError, match=r"compresslab\.measure\(model, inputs"),
        compresslab.measure_block(sampler="model"),
    ):
        pass


def test_measure_a_model_with_each_cpu_tier() -> None:
    net = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 4))
    x = torch.randn(16, 32)
    fast = Protocol(warmup_s=0.0, window_s=0.03, min_windows=2, max_windows=2)
    est = compresslab.measure(net, x, sampler="estimate", protocol=fast)
    mod = compresslab.measure(net, x, sampler="model", protocol=fast)
    assert isinstance(est, compresslab.Measurement) and isinstance(mod, compresslab.Measurement)
    assert str(est.energy.provenance) == "estimated" and str(mod.energy.provenance) == "modeled"
    assert est.energy_j_per_inference > 0 and mod.energy_j_per_inference > 0
    assert est.evaluation is None and est.recipe is None and est.trial is None
    assert "estimate" in est.selection


def test_the_deprecated_measure_functions_warn_and_answer_as_before() -> None:
    net = nn.Sequential(nn.Linear(8, 4))
    fast = Protocol(warmup_s=0.0, window_s=0.03, min_windows=2, max_windows=2)
    with pytest.warns(DeprecationWarning, match=r"compresslab\.measure\(model, inputs"):
        res = compresslab.measure_model(net, torch.randn(4, 8), sampler="estimate", protocol=fast)
    assert isinstance(res, EnergyResult) and res.energy_j_per_inference > 0
    assert "measure_model" not in compresslab.__all__


def test_carbon_table_and_override() -> None:
    world = carbon_settings()
    assert world.region == "WORLD" and world.pue == 1.0
    assert world.gco2e(1.0) == INTENSITY_G_PER_KWH["WORLD"]
    fr = carbon_settings(region="fr", pue=1.5)
    assert fr.gco2e(2.0) == pytest.approx(2.0 * 1.5 * INTENSITY_G_PER_KWH["FR"])
    assert "2023" in fr.describe() and "PUE 1.5" in fr.describe()
    mine = carbon_settings(intensity_g_per_kwh=123.0)
    assert mine.gco2e(1.0) == 123.0 and "set in the recipe" in mine.describe()
    with pytest.raises(RecipeError, match="carbon.intensity_g_per_kwh"):
        carbon_settings(region="Atlantis")


def test_public_names_are_functions_and_no_module_shares_a_name() -> None:
    import pkgutil

    modules = {m.name for m in pkgutil.iter_modules(compresslab.__path__)}
    public = set(compresslab.__all__) - {"__version__"}
    assert public & modules == set(), "a public function shares its name with a module"
    for name in public:
        assert getattr(compresslab, name) is not None
        assert name in dir(compresslab)
    assert callable(compresslab.search) and callable(compresslab.rebuild_report)
    assert callable(compresslab.measure) and callable(compresslab.measure_block)
