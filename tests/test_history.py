"""The run history: one line per measure and search, and a CodeCarbon-shaped CSV."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from tests_support import small

from compresslab.api import load_recipe, search
from compresslab.api import measure as measure_recipe
from compresslab.history import CODECARBON_COLUMNS, CSV, EXTRA_COLUMNS, JSONL

pytestmark = pytest.mark.slow


def test_measure_and_search_append_their_lines(tmp_path: Path, digits_task: Any) -> None:
    recipe = load_recipe(
        small(tmp_path, search={"trials": 2, "sampler": "random", "seed": 3, "confirm_pairs": 0})
    )
    measure_recipe(recipe)
    search(recipe)
    folder = tmp_path / "reports"
    lines = [json.loads(x) for x in (folder / JSONL).read_text().splitlines()]
    assert [x["command"] for x in lines] == ["measure", "search"]
    first = lines[0]
    assert first["variant"] == "baseline" and first["provenance"] == "estimated"
    assert first["energy_j_per_inference"] > 0 and first["ci95_j_per_inference"] >= 0
    assert first["recipe_hash"] and first["machine"]["cpu_model"]
    assert lines[1]["energy_j"] > 0 and lines[1]["trials"] >= 2
    with open(folder / CSV, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == CODECARBON_COLUMNS + EXTRA_COLUMNS
    assert [r["command"] for r in rows] == ["measure", "search"]
    assert all(r["provenance"] == "estimated" for r in rows)
    assert float(rows[0]["energy_consumed"]) == first["energy_j"] / 3.6e6
    assert float(rows[0]["emissions"]) > 0 and rows[0]["project_name"] == recipe.name


def test_history_can_be_turned_off(tmp_path: Path, digits_task: Any) -> None:
    recipe = load_recipe(small(tmp_path, report={"history": None}))
    measure_recipe(recipe)
    assert not (tmp_path / "reports" / JSONL).exists()
