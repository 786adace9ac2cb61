"""The search's own cost per part: recorded by a real search, rendered in the report.

Also: a variant predicted dominated is rendered with its prediction, and `measure --trial N`
measures it (its prediction returned beside the measurement).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import optuna
import pytest
from tests_support import sample_result, small

from compresslab.api import load_recipe, search
from compresslab.records import (
    CalibrationSummary,
    HeldOut,
    PartTime,
    Prediction,
    PredictionStatus,
    SessionEnergy,
)
from compresslab.report import render_markdown
from compresslab.report.figures import search_cost, search_cost_parts
from compresslab.study import measure_trial, open_study, storage_of


@pytest.mark.slow
def test_a_search_records_what_each_part_took(tmp_path: Path, digits_task: Any) -> None:
    recipe = load_recipe(
        small(
            tmp_path,
            compression=[
                {
                    "method": "prune_channels",
                    "params": {"ratio": {"choices": [0.3]}, "recovery_epochs": 1},
                },
            ],
            search={"trials": 2, "sampler": "grid", "screen_examples": 0, "confirm_pairs": 2},
        )
    )
    result = search(recipe)
    pruned = next(r for r in result.measured if not r.is_baseline)
    assert pruned.parts is not None
    for name in ("build", "finetune", "evaluate", "measure"):
        assert pruned.parts[name].wall_s > 0 and pruned.parts[name].cpu_s >= 0, name
    # one recovery epoch over the digits training split is far more than a prune step
    assert pruned.parts["finetune"].cpu_s > pruned.parts["build"].cpu_s
    assert "finetune" not in (result.baseline.parts or {})  # type: ignore[union-attr]
    session = result.info.sessions[0]
    assert set(session.parts) == {"setup", "confirm"}
    assert session.coefficients is not None and session.coefficients["watts_per_core"] == 7.0
    parts = {p.name: p for p in search_cost_parts(result)}
    assert {"setup", "build", "finetune", "evaluate", "measure", "confirm", "other"} <= set(parts)
    total = sum(s.energy_j for s in result.info.sessions)
    assert sum(p.energy_j or 0 for p in parts.values()) == pytest.approx(total, rel=1e-6)
    report = (recipe.output_dir() / "report.md").read_text()
    assert "| recovery fine-tuning |" in report and "cut the largest first" in report


def _with_parts(**info: Any) -> Any:
    result = sample_result()
    trials = list(result.trials)
    trials[1] = dataclasses.replace(
        trials[1],
        parts={
            "build": PartTime(wall_s=1.0, cpu_s=1.0, rss_gb=0.4),
            "finetune": PartTime(wall_s=6.0, cpu_s=4.0, rss_gb=0.4),
            "measure": PartTime(wall_s=3.0, cpu_s=2.0, rss_gb=0.4),
        },
    )
    session = SessionEnergy(
        energy_j=100.0,
        provenance="estimated",
        duration_s=15.0,
        coefficients={"watts_per_core": 7.0, "watts_per_gb": 0.375},
        parts={"setup": PartTime(wall_s=2.0, cpu_s=1.0, rss_gb=0.4)},
    )
    info_ = dataclasses.replace(result.info, sessions=(session,), **info)
    return dataclasses.replace(result, trials=trials, info=info_)


def test_the_report_prices_each_part_like_the_session() -> None:
    result = _with_parts()
    parts = {p.name: p for p in search_cost_parts(result)}
    assert parts["finetune"].energy_j == pytest.approx(4.0 * 7 + 0.4 * 0.375 * 6.0)
    assert parts["setup"].energy_j == pytest.approx(1.0 * 7 + 0.4 * 0.375 * 2.0)
    priced = sum(p.energy_j or 0 for n, p in parts.items() if n != "other")
    assert parts["other"].energy_j == pytest.approx(100.0 - priced)
    assert parts["other"].wall_s == pytest.approx(15.0 - 12.0)
    order = [p.name for p in search_cost_parts(result)]
    assert order[0] == "other" and order[1] == "finetune"  # largest first
    text = render_markdown(result)
    assert "| recovery fine-tuning | 6.0 | 4.0 | 28.9 J | 29% |" in text


def test_a_measured_session_is_split_by_time_only() -> None:
    result = _with_parts()
    sessions = (dataclasses.replace(result.info.sessions[0], provenance="measured"),)
    result = dataclasses.replace(result, info=dataclasses.replace(result.info, sessions=sessions))
    assert all(p.energy_j is None for p in search_cost_parts(result))
    assert "time only: a counter sees the whole machine" in render_markdown(result)


def test_break_even_in_the_unit_the_task_declares() -> None:
    result = _with_parts(unit="requests", tokens_per_inference=40)
    cost = search_cost(result)
    assert cost is not None and cost.unit == "requests"
    assert cost.break_even_tokens == pytest.approx(cost.break_even_inferences * 40)  # type: ignore[operator]
    assert f"{cost.break_even_inferences:,.0f} requests (" in render_markdown(result)
    plain = search_cost(_with_parts())
    assert plain is not None and plain.break_even_text().endswith(" inferences")


def test_the_report_lists_predicted_variants_and_the_calibration() -> None:
    result = _with_parts(
        prediction=PredictionStatus("predicting: fitted on 9 measured variants"),
        calibrations={
            "abc": CalibrationSummary(
                machine={"host": "h", "cpu_model": "Xeon"},
                n=9,
                loo=HeldOut(
                    n=9, spearman=0.93, median_error_rel=0.1, error_rel=0.25, max_error_rel=0.3
                ),
                coefficients={"mac_fp32": 2e-10, "mac_bf16": 0.0},
                identified=("mac_fp32",),
            )
        },
    )
    trials = list(result.trials)
    trials[2] = dataclasses.replace(
        trials[2],
        state="PRUNED",
        evaluation=None,
        predicted=Prediction(
            reason="predicted dominated",
            accuracy=0.985,
            j_per_inference=9e-4,
            error_rel=0.25,
            dominated_by=1,
            dominating_accuracy=0.985,
            dominating_j_per_inference=4e-4,
        ),
    )
    result = dataclasses.replace(result, trials=trials)
    assert [r.number for r in result.predicted] == [2]
    text = render_markdown(result)
    assert "1 predicted dominated" in text
    assert "## Prediction: variants not measured" in text
    assert "trial 2 (prune_channels(ratio=0.9)): accuracy 0.9850, predicted 900 µJ" in text
    assert "dominated by trial 1 (0.9850, 400 µJ)" in text
    assert "Spearman 0.93" in text and "200 pJ per fp32 MAC" in text


@pytest.mark.slow
def test_a_predicted_variant_can_be_measured_to_check_it(tmp_path: Path, digits_task: Any) -> None:
    recipe = load_recipe(
        small(
            tmp_path,
            compression=[{"method": "prune_channels", "params": {"ratio": {"choices": [0.3]}}}],
            search={"trials": 2, "sampler": "grid", "screen_examples": 0, "confirm_pairs": 0},
        )
    )
    search(recipe)
    study = open_study(recipe, storage=storage_of(recipe))
    measured = next(t for t in study.get_trials() if not t.user_attrs.get("is_baseline"))
    # The same variant as a search stores one it predicted dominated.
    prediction = {"reason": "predicted dominated", "ratio": 0.8, "j_per_inference": 1e-4}
    study.add_trial(
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.PRUNED,
            params=measured.params,
            distributions=measured.distributions,
            user_attrs={
                k: measured.user_attrs[k] for k in ("variant", "spec", "runtime", "is_baseline")
            }
            | {"predicted": prediction},
        )
    )
    number = study.get_trials()[-1].number
    out = measure_trial(recipe, trial=number).to_json()
    assert out["variant"] == measured.user_attrs["variant"]
    assert {k: out["prediction"][k] for k in prediction} == prediction
    assert out["energy_j_per_inference"] > 0 and not math.isnan(out["vs_baseline"]["ratio"])
