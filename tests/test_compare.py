"""Two studies side by side, from their storage alone."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests_support import sample_result, small, with_evaluation
from typer.testing import CliRunner

from compresslab.api import compare, load_recipe, search
from compresslab.cli import app
from compresslab.errors import UsageError
from compresslab.records import Provenance
from compresslab.report.compare import COLUMNS, compare_results, write_comparison


@pytest.fixture(scope="module")
def recipes(tmp_path_factory: pytest.TempPathFactory, digits_task: Any) -> tuple[Path, Path]:
    """The same recipe searched twice, as on two machines: the two recipe files."""
    files = []
    for name in ("a", "b"):
        tmp = tmp_path_factory.mktemp(name)
        spec = small(
            tmp,
            search={"trials": 3, "sampler": "grid", "screen_examples": 0, "confirm_pairs": 0},
            compression=[
                {"method": "prune_channels", "params": {"ratio": 0.5}},
                {"method": "dynamic_int8"},
            ],
        )
        (tmp / "small.yaml").write_text(yaml.safe_dump(spec))
        search(load_recipe(spec))
        files.append(tmp / "small.yaml")
    return files[0], files[1]


@pytest.fixture(scope="module")
def two_studies(recipes: tuple[Path, Path]) -> tuple[Path, Path]:
    """The two searches' report folders."""
    a, b = (load_recipe(r).output_dir() for r in recipes)
    return a, b


@pytest.mark.slow
def test_variants_in_both_are_side_by_side_with_their_ratios(
    two_studies: tuple[Path, Path],
) -> None:
    comparison = compare(*two_studies)
    frame = comparison.frame()
    assert list(frame.columns) == COLUMNS
    assert set(frame.variant) >= {"baseline", "prune_channels(ratio=0.5)"}
    base = frame[frame.variant == "baseline"].iloc[0]
    assert base.ratio_vs_baseline_a == 1.0 and base.ratio_vs_baseline_b == 1.0
    pruned = frame[frame.variant == "prune_channels(ratio=0.5)"].iloc[0]
    assert pruned.provenance_a == pruned.provenance_b == "estimated"
    assert pruned.energy_b_over_a == pytest.approx(
        pruned.energy_j_per_inference_b / pruned.energy_j_per_inference_a
    )
    # Each study's own paired ratio, as its report states it (no bound on a measured figure).
    import pandas as pd

    for folder, ratio in zip(
        two_studies, (pruned.ratio_vs_baseline_a, pruned.ratio_vs_baseline_b), strict=True
    ):
        trials = pd.read_csv(folder / "trials.csv")
        stated = trials.loc[
            trials.variant == "prune_channels(ratio=0.5)", "energy_ratio_vs_baseline"
        ]
        assert ratio == pytest.approx(stated.item()) and ratio > 0
    # The same recipe (only its output folder differs), one machine, one provenance.
    assert comparison.warnings == []


@pytest.mark.slow
def test_the_command_prints_the_table_and_writes_the_files(
    two_studies: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "cmp"
    res = CliRunner().invoke(
        app, ["compare", str(two_studies[0]), str(two_studies[1]), "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert "prune_channels(ratio=0.5)" in res.output
    for name in ("compare.md", "compare.csv", "compare.png"):
        assert (out / name).stat().st_size > 0
    assert "| baseline |" in (out / "compare.md").read_text()
    again = CliRunner().invoke(
        app, ["compare", str(two_studies[0]), str(two_studies[1]), "--out", str(out)]
    )
    assert isinstance(again.exception, UsageError) and "--force" in str(again.exception)
    as_json = CliRunner().invoke(
        app,
        ["compare", str(two_studies[0]), str(two_studies[1]), "--out", str(out), "--force"]
        + ["--json"],
    )
    assert as_json.exit_code == 0, as_json.output
    result = json.loads(as_json.stdout)
    assert {r["variant"] for r in result["rows"]} >= {"baseline", "dynamic_int8"}
    assert set(result["written"]) == {"compare.md", "compare.csv", "compare.png"}


@pytest.mark.slow
def test_recipes_name_their_studies(recipes: tuple[Path, Path]) -> None:
    res = CliRunner().invoke(app, ["compare", str(recipes[0]), str(recipes[1]), "--json"])
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout)
    assert result["a"]["study"] == result["b"]["study"] == "small"
    assert result["a"]["storage"] != result["b"]["storage"]  # each recipe's own storage
    by_variant = {r["variant"]: r for r in result["rows"]}
    assert by_variant["baseline"]["ratio_vs_baseline_a"] == 1.0
    assert {"prune_channels(ratio=0.5)", "dynamic_int8"} <= set(by_variant)


def test_figures_of_different_provenance_are_not_divided_unless_forced(tmp_path: Path) -> None:
    a = sample_result()
    b = sample_result()
    energy = b.trials[1].energy
    assert energy is not None
    measured = dataclasses.replace(energy, provenance=Provenance.MEASURED)
    b.trials[1] = with_evaluation(b.trials[1], energy=measured)
    comparison = compare_results(a, b)
    row = next(r for r in comparison.rows if r.variant == "prune_channels(ratio=0.5)")
    assert row.energy_b_over_a is None
    assert any("provenance differs" in w and "--mixed-provenance" in w for w in comparison.warnings)
    forced = compare_results(a, b, force=True)
    assert next(r for r in forced.rows if r.trial_a == 1).energy_b_over_a == pytest.approx(1.0)
    paths = write_comparison(comparison, tmp_path)
    assert paths["compare.png"].read_bytes()[:4] == b"\x89PNG"


def test_a_folder_without_a_study_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no study database") as e:
        compare(tmp_path, tmp_path)
    assert e.value.exit_code == 2
