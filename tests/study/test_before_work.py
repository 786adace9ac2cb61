"""Said before any work: one info line, a warning with the figures, or exit 2; known baselines."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest

from compresslab.recipe.schema_search import AccuracyEvaluation, Tolerance
from compresslab.study import attrs
from compresslab.study.before_work import (
    UnresolvableToleranceError,
    announce,
    stored_baseline_accuracy,
)
from compresslab.study.resolvable import Resolvability, resolvability

ONE_POINT = Tolerance(absolute=0.01)


def test_announce_says_one_line_warns_or_refuses(caplog: pytest.LogCaptureFixture) -> None:
    def of(pool: int, on: str) -> Resolvability:
        evaluation = AccuracyEvaluation(on_unresolvable=on)  # type: ignore[arg-type]
        return resolvability(
            pool=pool, tolerance=ONE_POINT, evaluation=evaluation, baseline_accuracy=0.9944
        )

    caplog.set_level(logging.INFO, logger="compresslab.study.before_work")
    announce(of(20_000, "warn"))
    announce(of(360, "warn"))
    records = [r for r in caplog.records if r.name == "compresslab.study.before_work"]
    assert [r.levelno for r in records] == [logging.INFO, logging.WARNING]
    assert "is resolvable" in records[0].getMessage()
    assert "cannot be resolved" in records[1].getMessage()
    refused = of(360, "error")
    assert refused.level == "error"
    with pytest.raises(UnresolvableToleranceError) as caught:
        announce(refused)
    assert caught.value.exit_code == 2
    assert "cannot be resolved" in str(caught.value) and "stopped before any trial" in str(
        caught.value
    )


def test_a_stored_study_gives_its_baseline_accuracy(tmp_path: Path) -> None:
    folder = tmp_path
    url = f"sqlite:///{folder / 'study.db'}"
    assert stored_baseline_accuracy("small", storage=url, pool=360) is None  # no file: None
    assert not (folder / "study.db").exists()  # and nothing created
    study = optuna.create_study(study_name="small", storage=url, directions=["maximize"] * 2)
    assert stored_baseline_accuracy("small", storage=url, pool=360) is None  # no baseline yet
    study.set_user_attr(attrs.BASELINE_ACCURACY, 0.9944)
    study.set_user_attr(attrs.REPORT_INFO, {"eval_examples": 360})
    assert stored_baseline_accuracy("small", storage=url, pool=360) == 0.9944
    assert stored_baseline_accuracy("small", storage=url, pool=4000) is None  # another pool
    assert stored_baseline_accuracy("other", storage=url, pool=360) is None


def test_before_work_takes_the_given_then_the_stored_baseline_else_assumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from compresslab import tasks
    from compresslab.recipe import Recipe
    from compresslab.study.before_work import resolvability_before_work

    # The pool comes from the task: 360 examples (a stand-in task; nothing is trained).
    monkeypatch.setattr(
        tasks, "load_task", lambda spec: SimpleNamespace(eval_labels=torch.zeros(360))
    )
    recipe = Recipe.model_validate(
        {
            "name": "small",
            "task": {"name": "digits"},
            "compression": [{"method": "bf16"}],
            "output": str(tmp_path / "reports"),
        }
    )
    given = resolvability_before_work(recipe, baseline_accuracy=0.9944)
    assert (given.pool, given.baseline_source, given.baseline_accuracy) == (
        360,
        "baseline file",
        0.9944,
    )
    assumed = resolvability_before_work(recipe)
    assert assumed.baseline_source == "assumed" and "not known yet" in assumed.message()
    assert not (tmp_path / "reports").exists()  # nothing created looking for a study
    url = f"sqlite:///{tmp_path / 'reports' / 'small' / 'study.db'}"
    (tmp_path / "reports" / "small").mkdir(parents=True)
    study = optuna.create_study(study_name="small", storage=url, directions=["maximize"] * 2)
    study.set_user_attr(attrs.BASELINE_ACCURACY, 0.95)
    study.set_user_attr(attrs.REPORT_INFO, {"eval_examples": 360})
    stored = resolvability_before_work(recipe)
    assert (stored.baseline_source, stored.baseline_accuracy) == ("study", 0.95)
    assert "95.00%, stored by the study" in stored.message()
