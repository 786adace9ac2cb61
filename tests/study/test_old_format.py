"""A study written by compresslab 0.1.0 (trial format 0) still opens, reports and compares."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from compresslab.api import compare, load_recipe, rebuild_report

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "study_format0"


@pytest.fixture
def old_study(tmp_path: Path) -> Path:
    """The fixture's recipe and study in a temporary report folder (the fixture stays as is)."""
    folder = tmp_path / "reports" / "oldformat"
    folder.mkdir(parents=True)
    shutil.copy(FIXTURE / "study.db", folder / "study.db")
    shutil.copy(FIXTURE / "recipe.yaml", tmp_path / "recipe.yaml")
    return tmp_path


def _rows(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return {row["trial"]: row for row in csv.DictReader(f)}


def test_an_old_study_reports_the_figures_it_reported_then(old_study: Path) -> None:
    recipe = load_recipe(old_study / "recipe.yaml")
    result = rebuild_report(recipe, base_dir=old_study)
    assert result.counts().startswith("2 variants measured, 2 screened out")
    assert [r.number for r in result.frontier] == [1]
    assert result.trials[1].confirmed is not None
    # No per-example outcomes then, nor the number of examples: not compared, and said so.
    assert all(r.accuracy_vs_baseline is None for r in result.trials)
    then = _rows(FIXTURE / "trials.csv")
    now = _rows(old_study / "reports" / "oldformat" / "trials.csv")
    assert set(now) == set(then)
    for trial, row in then.items():
        for column in (
            "state",
            "variant",
            "accuracy",
            "feasible",
            "pareto",
            "energy_j_per_inference",
            "ci95_j_per_inference",
            "energy_ratio_vs_baseline",
            "ratio_ci95_low",
            "confirmed_ratio",
            "provenance",
            "screened",
        ):
            assert now[trial][column] == row[column], (trial, column)
    report = (old_study / "reports" / "oldformat" / "report.md").read_text(encoding="utf-8")
    assert "dynamic_int8" in report
    # Marked: no paired comparison was possible, and the report and the table say so.
    assert "kept no per-example outcomes: its variants are compared unpaired where" in report
    assert now["1"]["accuracy_method"] == "not compared"


def test_an_old_study_compares_with_itself(old_study: Path) -> None:
    db = old_study / "reports" / "oldformat" / "study.db"
    other = old_study / "other.db"
    shutil.copy(db, other)
    comparison = compare(db, other)
    frame = comparison.frame()
    assert len(frame) > 0
    assert "dynamic_int8" in comparison.markdown()
