from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from tests_support import FAST_ENERGY, small

from compresslab.api import load_recipe
from compresslab.check import (
    BaselineError,
    Snapshot,
    compare,
    read_baseline,
    run_check,
    welch_p_greater,
)

FAST = {**FAST_ENERGY, "min_windows": 3, "max_windows": 3}


def _recipe_file(tmp_path: Path, name: str, **task_options: object) -> Path:
    r = small(tmp_path, energy=FAST)
    r["task"] = {"name": "digits", "options": {"epochs": 2, **task_options}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(r))
    return path


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "compresslab", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=600,
    )


def _snap(
    windows: list[float],
    *,
    provenance: str = "measured",
    modeled: float = 1e-6,
    host: str = "h",
    accuracy: float = 0.95,
) -> Snapshot:
    mean = sum(windows) / len(windows)
    return Snapshot(
        recipe="r",
        recipe_hash="x",
        variant="baseline",
        metric="accuracy",
        accuracy=accuracy,
        sampler="rapl",
        provenance=provenance,
        energy_j_per_inference=mean,
        ci95_j_per_inference=0.0,
        window_j_per_inference=windows,
        modeled_j_per_inference=modeled,
        batch_size=32,
        machine={"host": host, "cpu_model": "cpu", "logical_cpus": "2"},
    )


@pytest.fixture(scope="module")
def recipe_obj(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return load_recipe(small(tmp_path_factory.mktemp("r")))


BASE = [1.00, 1.02, 0.98, 1.01, 0.99]


def test_measured_tier_noise_passes_and_real_regression_fails(recipe_obj) -> None:  # type: ignore[no-untyped-def]
    base = _snap(BASE)
    noisy = _snap([1.03, 0.99, 1.04, 1.00, 1.02])  # +1.6%: within 5%
    assert compare(base, noisy, recipe_obj).passed
    regressed = _snap([v * 1.2 for v in BASE])
    verdict = compare(base, regressed, recipe_obj)
    assert not verdict.passed and verdict.exit_code == 1
    assert verdict.tier == "measured"
    assert verdict.p_value is not None and verdict.p_value < 0.05
    assert "rose 20.0%" in verdict.reasons[0]


def test_measured_rise_that_is_not_significant_passes(recipe_obj) -> None:  # type: ignore[no-untyped-def]
    base = _snap([1.0, 1.4, 0.6, 1.2, 0.8])
    wide = _snap([1.5, 0.6, 1.6, 0.7, 1.3])  # +14% mean, but the windows overlap widely
    verdict = compare(base, wide, recipe_obj)
    assert verdict.passed
    assert "not significant" in verdict.reasons[0]


def test_other_machine_refuses_measured_unless_forced(recipe_obj) -> None:  # type: ignore[no-untyped-def]
    base = _snap(BASE, modeled=1e-6)
    other = _snap([v * 1.2 for v in BASE], host="elsewhere", modeled=1e-6)
    verdict = compare(base, other, recipe_obj)
    assert verdict.tier == "modeled" and verdict.passed
    assert any("refused across machines" in w for w in verdict.warnings)
    forced = compare(base, other, recipe_obj, force=True)
    assert forced.tier == "measured" and not forced.passed


def test_estimated_figures_gate_on_the_modeled_tier(recipe_obj) -> None:  # type: ignore[no-untyped-def]
    base = _snap(BASE, provenance="estimated", modeled=2e-6)
    same_model_noisier = _snap([v * 1.5 for v in BASE], provenance="estimated", modeled=2e-6)
    verdict = compare(base, same_model_noisier, recipe_obj)
    assert verdict.passed and verdict.tier == "modeled"
    assert verdict.estimated_ratio == pytest.approx(1.5)
    heavier = replace(same_model_noisier, modeled_j_per_inference=2e-6 * 1.001)
    assert not compare(base, heavier, recipe_obj).passed  # exact: even +0.1% fails


def test_accuracy_gate(recipe_obj) -> None:  # type: ignore[no-untyped-def]
    gated = recipe_obj.model_copy(
        update={"check": recipe_obj.check.model_copy(update={"max_accuracy_drop": 0.01})}
    )
    base = _snap(BASE, accuracy=0.95)
    worse = _snap(BASE, accuracy=0.93)
    verdict = compare(base, worse, gated)
    assert not verdict.passed
    assert "fell 2.00 points" in verdict.reasons[-1]
    assert compare(base, worse, recipe_obj).passed  # not gated by default


def test_welch() -> None:
    assert welch_p_greater([2.0, 2.1, 1.9], [1.0, 1.1, 0.9]) < 0.01
    assert welch_p_greater([1.0, 1.1, 0.9], [2.0, 2.1, 1.9]) > 0.99
    assert welch_p_greater([1.0, 1.0], [1.0, 1.0]) == 1.0


def test_missing_and_corrupt_baselines_say_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(BaselineError, match="--update"):
        read_baseline(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(BaselineError, match="--update"):
        read_baseline(bad)
    bad.write_text(json.dumps({"format": 1, "recipe": "r"}))
    with pytest.raises(BaselineError, match="incomplete"):
        read_baseline(bad)
    recipe = _recipe_file(tmp_path, "r")
    proc = _cli("check", str(recipe), "--baseline", str(bad))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--update" in proc.stderr


def test_same_model_passes_and_a_twice_as_wide_one_fails(tmp_path: Path) -> None:
    narrow = _recipe_file(tmp_path, "narrow", width=16)
    wide = _recipe_file(tmp_path, "wide", width=32)
    baseline = tmp_path / "baseline.json"
    made = _cli("check", str(narrow), "--baseline", str(baseline), "--update")
    assert made.returncode == 0, made.stderr
    snap = read_baseline(baseline)
    assert snap.provenance == "estimated" and snap.modeled_j_per_inference > 0

    summary = tmp_path / "summary.md"
    same = _cli(
        "check", str(narrow), "--baseline", str(baseline), "--json", "--summary", str(summary)
    )
    assert same.returncode == 0, same.stderr
    verdict = json.loads(same.stdout)
    assert verdict["passed"] and verdict["tier"] == "modeled"
    assert verdict["ratio"] == pytest.approx(1.0, rel=1e-9)  # the modeled tier is exact
    assert "PASS" in summary.read_text()

    heavier = _cli("check", str(wide), "--baseline", str(baseline))
    assert heavier.returncode == 1, heavier.stderr
    assert "REGRESSION" in heavier.stdout
    assert "modeled energy per inference rose" in heavier.stdout


def test_run_check_update_then_compare_in_process(tmp_path: Path) -> None:
    recipe = load_recipe(_recipe_file(tmp_path, "r"))
    path = tmp_path / "b.json"
    snap, verdict = run_check(recipe, baseline_path=path, update=True)
    assert verdict is None and path.is_file()
    again, verdict = run_check(recipe, baseline_path=path)
    assert verdict is not None and verdict.passed
    assert again.modeled_j_per_inference == pytest.approx(snap.modeled_j_per_inference, rel=1e-9)


def test_a_baseline_from_another_recipe_warns_naming_what_changed(recipe_obj) -> None:  # type: ignore[no-untyped-def]
    from compresslab.recipe import result_fields

    fields = result_fields(recipe_obj.model_dump(mode="json"))
    base = replace(_snap(BASE), recipe_hash="aaaa", recipe_fields=fields)
    same = replace(_snap(BASE), recipe_hash="aaaa", recipe_fields=fields)
    assert not any("another recipe" in w for w in compare(base, same, recipe_obj).warnings)

    split = {**fields, "task": {**fields["task"], "options": {"test_fraction": 0.3}}}
    moved = replace(_snap(BASE), recipe_hash="bbbb", recipe_fields=split)
    verdict = compare(base, moved, recipe_obj)
    assert verdict.passed  # the gate still runs: same figures, same verdict
    [warning] = [w for w in verdict.warnings if "another recipe" in w]
    assert "hash aaaa, this one bbbb" in warning
    assert "task.options.test_fraction: (unset) -> 0.3" in warning and "--update" in warning

    # Only a field that decides nothing measured (a threshold, a name) changed.
    renamed = replace(_snap(BASE), recipe_hash="cccc", recipe_fields=fields)
    [warning] = [w for w in compare(base, renamed, recipe_obj).warnings if "another" in w]
    assert "no field that decides measured results changed" in warning

    # A baseline written before recipe fields were stored: the hashes only.
    old = replace(base, recipe_fields=None)
    [warning] = [w for w in compare(old, moved, recipe_obj).warnings if "another" in w]
    assert "hash aaaa, this one bbbb" in warning and "what changed is unknown" in warning


def test_check_names_the_recipe_change_and_reads_an_older_baseline(tmp_path: Path) -> None:
    path = _recipe_file(tmp_path, "r", test_fraction=0.2)
    baseline = tmp_path / "baseline.json"
    made = _cli("check", str(path), "--baseline", str(baseline), "--update")
    assert made.returncode == 0, made.stderr
    stored = json.loads(baseline.read_text())
    assert stored["recipe_fields"]["task"]["options"] == {"epochs": 2, "test_fraction": 0.2}

    # The evaluation split changes (the architecture does not): the gate passes, and says so.
    changed = _recipe_file(tmp_path, "r", test_fraction=0.25)
    proc = _cli("check", str(changed), "--baseline", str(baseline))
    assert proc.returncode == 0, proc.stderr
    warning = " ".join(proc.stderr.split())
    assert "baseline was made with another recipe" in warning
    assert "task.options.test_fraction: 0.2 -> 0.25" in warning

    # A baseline of an older version (no recipe_fields key) is still read.
    del stored["recipe_fields"]
    baseline.write_text(json.dumps(stored))
    assert read_baseline(baseline).recipe_fields is None
    old = _cli("check", str(changed), "--baseline", str(baseline), "--json")
    assert old.returncode == 0, old.stderr
    [warning] = [w for w in json.loads(old.stdout)["warnings"] if "another recipe" in w]
    assert "what changed is unknown" in warning
