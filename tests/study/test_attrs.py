"""study.attrs: the one module that knows how a trial's figures are stored."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import optuna
import pytest
from record_builders import evaluation

from compresslab.records import Confirmation, Prediction, Screening, to_json
from compresslab.study import attrs

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "study_format0"


def _study() -> optuna.Study:
    return optuna.create_study(directions=["maximize", "minimize"])


def test_an_evaluation_written_to_a_trial_reads_back_equal() -> None:
    study = _study()
    trial = study.ask()
    ev = evaluation()
    attrs.write_variant(trial, label="v", spec={"steps": []}, runtime={}, is_baseline=False)
    attrs.write_evaluation(trial, ev)
    study.tell(trial, [ev.metric, ev.vs_baseline.ratio])
    stored = attrs.read(study.trials[0])
    assert stored.format == attrs.FORMAT_VERSION
    assert stored.evaluation == ev
    assert stored.variant == "v" and not stored.is_baseline
    assert stored.parts == ev.parts


def test_screening_and_prediction_read_back_typed() -> None:
    study = _study()
    a, b = study.ask(), study.ask()
    attrs.write_screening(a, Screening("clearly below", 0.5))
    attrs.write_prediction(b, Prediction(reason="dominated", ratio=0.9, dominated_by=0))
    for t in (a, b):
        study.tell(t, state=optuna.trial.TrialState.PRUNED)
    first, second = (attrs.read(t) for t in study.trials)
    assert first.screening == Screening("clearly below", 0.5) and first.evaluation is None
    assert second.prediction is not None and second.prediction.dominated_by == 0


def test_a_copied_result_reads_as_the_original() -> None:
    study = _study()
    first = study.ask()
    attrs.write_evaluation(first, evaluation())
    study.tell(first, [0.98, 0.5])
    second = study.ask()
    attrs.copy_result(second, study.trials[0])
    study.tell(second, [0.98, 0.5])
    assert attrs.read(study.trials[1]).evaluation == attrs.read(study.trials[0]).evaluation


def test_confirmations_round_trip_through_the_study() -> None:
    study = _study()
    c = Confirmation(ratio=0.5, ci95_low=0.4, ci95_high=0.6, pairs=6, round_ratios=(0.5, 0.5))
    attrs.write_confirmation(study, 3, c)
    assert attrs.confirmations(study.user_attrs) == {3: c}


def test_a_figure_that_does_not_fit_names_the_trial() -> None:
    study = _study()
    trial = study.ask()
    broken = to_json(evaluation())
    broken["energy"]["windows"] = "three"
    trial.set_user_attr(attrs.EVALUATION, broken)
    study.tell(trial, [0.9, 0.5])
    with pytest.raises(Exception, match=r"trial 0 .*energy\.windows"):
        attrs.read(study.trials[0])


@pytest.fixture
def format0(tmp_path: Path) -> optuna.Study:
    db = tmp_path / "study.db"
    shutil.copy(FIXTURE / "study.db", db)
    return optuna.load_study(study_name="oldformat", storage=f"sqlite:///{db}")


def test_a_format0_trial_reads_as_an_evaluation(format0: optuna.Study) -> None:
    baseline, variant = (attrs.read(t) for t in format0.trials[:2])
    assert baseline.format == 0 and baseline.is_baseline
    assert baseline.evaluation is not None and variant.evaluation is not None
    assert baseline.evaluation.vs_baseline.ratio == 1.0
    assert variant.evaluation.metric == format0.trials[1].values[0]
    assert variant.evaluation.vs_baseline.pairs == 3
    assert variant.evaluation.reference_energy is not None
    assert variant.evaluation.op_counts.macs["int8"] > 0
    assert str(variant.evaluation.energy.provenance) == "estimated"
    screened = attrs.read(format0.trials[2])
    assert screened.screening is not None and screened.evaluation is None
    assert attrs.baseline_j(format0.trials) == baseline.evaluation.energy_j_per_inference
    confirmed = attrs.confirmations(format0.user_attrs)
    assert set(confirmed) == {1} and confirmed[1].rounds == 3


def test_a_new_figure_needs_no_change_here() -> None:
    # metric_examples was added to Evaluation after format 1 was written: the record and
    # the bench changed, this module did not. A trial stored before it reads the default.
    study = _study()
    trial = study.ask()
    stored = to_json(evaluation())
    del stored["metric_examples"]
    trial.set_user_attr(attrs.EVALUATION, stored)
    study.tell(trial, [0.98, 0.5])
    assert attrs.read(study.trials[0]).evaluation.metric_examples == 0  # type: ignore[union-attr]
    again = study.ask()
    attrs.write_evaluation(again, dataclasses.replace(evaluation(), metric_examples=360))
    study.tell(again, [0.98, 0.5])
    assert attrs.read(study.trials[1]).evaluation.metric_examples == 360  # type: ignore[union-attr]
