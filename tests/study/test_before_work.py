"""Said before any work: one info line, a warning with the figures, or exit 2; known baselines."""

from __future__ import annotations

import logging
from pathlib import Path

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
    assert "cannot be resolved" in str(caught.value) and "nothing was run" in str(caught.value)


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
