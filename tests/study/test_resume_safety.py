"""A changed recipe never silently resumes an old study.

- A study stores the recipe it was created with; a search on a recipe that differs in a field
  that decides results (the task, compression, energy, runtime, seed, tolerance, sampler,
  screening) is refused before any work with one message naming the change and the two ways
  out (exit code 2).
- ``--fresh`` deletes the study and starts over; ``search.trials`` (and names, output,
  report, carbon, check) may change freely.
- A study of an older version (no stored recipe) resumes with a warning and stores it.
- A finished study says "nothing to do" and changes nothing.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from tests_support import run_cli, small

import compresslab.study.run as run_module
from compresslab.api import load_recipe, search
from compresslab.recipe import RESULT_FIELDS, recipe_changes
from compresslab.study import RecipeChangedError, make_storage

pytestmark = pytest.mark.slow


def _recipe(tmp_path: Path, test_fraction: float = 0.2, **search: Any) -> dict[str, Any]:
    return small(
        tmp_path,
        task={"name": "digits", "options": {"test_fraction": test_fraction}},
        search={"trials": 2, "sampler": "random", "seed": 1, **search},
    )


def _write(tmp_path: Path, recipe: dict[str, Any]) -> Path:
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _study(tmp_path: Path) -> Any:
    db = tmp_path / "reports" / "small" / "study.db"
    return optuna.load_study(study_name="small", storage=make_storage(f"sqlite:///{db}"))


# --- which fields decide results --------------------------------------------------------


def test_recipe_changes_names_result_fields_only(tmp_path: Path) -> None:
    base = load_recipe(_recipe(tmp_path)).model_dump(mode="json")
    assert recipe_changes(base, base) == []
    free = load_recipe(
        {
            **_recipe(tmp_path, trials=40, study_name="other", storage="sqlite:///x.db"),
            "name": "renamed",
            "description": "new words",
            "output": str(tmp_path / "elsewhere"),
            "carbon": {"region": "FR"},
            "check": {"max_increase": 0.2},
            "report": {"requests_per_s": 99.0},
        }
    ).model_dump(mode="json")
    assert recipe_changes(base, free) == []

    changed = load_recipe(
        {
            **_recipe(tmp_path, test_fraction=0.3, seed=7, screen_examples=0),
            "energy": {**base["energy"], "batch_size": 16},
        }
    ).model_dump(mode="json")
    assert recipe_changes(base, changed) == [
        "task.options.test_fraction: 0.2 -> 0.3",
        "energy.batch_size: 32 -> 16",
        "search.screen_examples: 200 -> 0",
        "search.seed: 1 -> 7",
    ]
    assert {p.partition(".")[0] for p in RESULT_FIELDS} == {
        "task",
        "compression",
        "runtime",
        "energy",
        "search",
    }


def test_recipe_changes_sees_compression_edits_and_ignores_a_newly_defaulted_field(
    tmp_path: Path,
) -> None:
    base = load_recipe(_recipe(tmp_path)).model_dump(mode="json")
    narrower = load_recipe(
        {
            **_recipe(tmp_path),
            "compression": [
                {
                    "method": "prune_channels",
                    "params": {"ratio": {"low": 0.1, "high": 0.4, "step": 0.1}},
                }
            ],
        }
    ).model_dump(mode="json")
    assert recipe_changes(base, narrower) == [
        "compression.0.params.ratio.high: 0.6 -> 0.4",
        'compression.1: {"method": "dynamic_int8", "params": {}} -> (unset)',
    ]
    # A study stored by a version without `energy.threads` (a field with a default) is the
    # same recipe: the default fills it in.
    older = {**base, "energy": {k: v for k, v in base["energy"].items() if k != "threads"}}
    assert recipe_changes(older, base) == []
    # An option written out where it was left to its default is a change (conservative).
    explicit = {**base, "task": {**base["task"], "options": {"test_fraction": 0.2, "epochs": 2}}}
    assert recipe_changes(base, explicit) == ["task.options.epochs: (unset) -> 2"]


# --- refusing, starting over, extending --------------------------------------------------


def test_a_changed_task_option_is_refused_then_fresh_starts_over(tmp_path: Path) -> None:
    path = _write(tmp_path, _recipe(tmp_path, test_fraction=0.2))
    first = run_cli("search", str(path), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    before = _study(tmp_path)
    old_numbers = [(t.number, t.datetime_start) for t in before.get_trials()]
    assert before.user_attrs["report_info"]["eval_examples"] == 360

    # The evaluation split changes: the old trials were measured on another one.
    _write(tmp_path, _recipe(tmp_path, test_fraction=0.3))
    refused = run_cli("search", str(path), cwd=tmp_path)
    assert refused.returncode == 2
    assert "Traceback" not in refused.stderr
    message = " ".join(refused.stderr.split())  # rich may wrap a long line
    assert "task.options.test_fraction: 0.2 -> 0.3" in message
    assert "--fresh" in message and "search.study_name" in message
    assert "deleted" in message  # what --fresh does to the old trials
    untouched = _study(tmp_path)
    assert [(t.number, t.datetime_start) for t in untouched.get_trials()] == old_numbers
    sessions = [k for k in untouched.user_attrs if k.startswith("search_energy:")]
    assert len(sessions) == 1  # the refused run recorded no session

    fresh = run_cli("search", str(path), "--fresh", cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr
    assert "deleted study 'small' (2 trial(s))" in " ".join(fresh.stderr.split())
    after = _study(tmp_path)
    trials = after.get_trials()
    assert trials[0].number == 0 and trials[0].user_attrs.get("is_baseline") is True
    assert all(t.datetime_start > old_numbers[-1][1] for t in trials)  # none of the old ones
    assert after.user_attrs["report_info"]["eval_examples"] == 540  # 30% of 1797 digits
    assert after.user_attrs["recipe"]["task"]["options"] == {"test_fraction": 0.3}
    assert len([k for k in after.user_attrs if k.startswith("search_energy:")]) == 1

    # The same recipe again: nothing to do, nothing rewritten.
    again = run_cli("search", str(path), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "nothing to do: 2 of 2 variants already evaluated" in " ".join(again.stderr.split())
    unchanged = _study(tmp_path)
    assert len(unchanged.get_trials()) == len(trials)
    assert unchanged.user_attrs == after.user_attrs


def test_fresh_on_a_study_that_does_not_exist_just_runs(tmp_path: Path) -> None:
    result = search(load_recipe(_recipe(tmp_path)), fresh=True)
    assert sum(t.evaluated for t in result.trials) == 2
    assert result.baseline is not None and result.baseline.number == 0


def test_a_changed_recipe_is_refused_before_the_task_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    search(load_recipe(_recipe(tmp_path)))

    def no_task(*a: Any, **k: Any) -> Any:
        raise AssertionError("the task was loaded for a refused search")

    monkeypatch.setattr(run_module, "load_task", no_task)
    changed = load_recipe(_recipe(tmp_path, tolerance={"relative": 0.05}))
    with pytest.raises(RecipeChangedError) as caught:
        search(changed)
    assert caught.value.exit_code == 2
    assert caught.value.changes[0].startswith("search.tolerance.")
    assert "fresh=True" in str(caught.value)


def test_changing_only_the_budget_resumes(tmp_path: Path) -> None:
    first = search(load_recipe(_recipe(tmp_path, trials=2)))
    kept = {t.number: t.values for t in _study(tmp_path).get_trials()}
    more = search(load_recipe(_recipe(tmp_path, trials=3)))
    assert sum(t.evaluated for t in more.trials) == 3
    by_number = {t.number: t for t in _study(tmp_path).get_trials()}
    assert {n: by_number[n].values for n in kept} == kept  # the first trials, as they were
    assert len(more.trials) > len(first.trials)


def test_a_study_of_an_older_version_resumes_with_a_warning_and_stores_the_recipe(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    search(load_recipe(_recipe(tmp_path, trials=2)))
    db = tmp_path / "reports" / "small" / "study.db"
    # What an older compresslab left: the same study without the stored recipe.
    with sqlite3.connect(db) as con:
        con.execute("DELETE FROM study_user_attributes WHERE key IN ('recipe', 'recipe_hash')")
    assert "recipe" not in _study(tmp_path).user_attrs

    with caplog.at_level(logging.WARNING, logger="compresslab"):
        result = search(load_recipe(_recipe(tmp_path, trials=3)))
    assert any("did not store its recipe" in r.getMessage() for r in caplog.records)
    assert sum(t.evaluated for t in result.trials) == 3  # resumed, not restarted
    stored = _study(tmp_path).user_attrs["recipe"]
    assert stored["search"]["trials"] == 3 and stored["task"]["options"] == {"test_fraction": 0.2}
    # From now on a change is caught.
    with pytest.raises(RecipeChangedError, match=r"task\.options\.test_fraction: 0\.2 -> 0\.25"):
        search(load_recipe(_recipe(tmp_path, test_fraction=0.25, trials=4)))
