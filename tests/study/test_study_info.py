"""A study's context (StudyInfo): stored when a search starts, read back typed and tolerantly."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import optuna
import pytest

from compresslab.errors import StorageError
from compresslab.records import (
    STUDY_DERIVED,
    CarbonIntensity,
    PartTime,
    PredictionStatus,
    ProjectionSettings,
    SessionEnergy,
    StudyInfo,
    from_json,
)
from compresslab.study import attrs
from compresslab.study.records import study_info

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "study_format0"


@pytest.fixture
def old_study(tmp_path: Path) -> optuna.Study:
    """The 0.1.0 fixture's study, from a copy (the fixture stays as is)."""
    shutil.copy(FIXTURE / "study.db", tmp_path / "study.db")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name="oldformat", storage=f"sqlite:///{tmp_path / 'study.db'}")


def test_an_old_studys_context_reads_typed(old_study: optuna.Study) -> None:
    info = study_info(old_study)
    assert info.task.startswith("DigitsCNN(width=32)")
    assert (info.optuna_sampler, info.optuna_sampler_reason) == (
        "grid",
        "named in the recipe (search.sampler)",
    )
    assert info.eval_examples == 360 and info.seed == 0 and info.batch_size == 64
    assert info.carbon is not None and info.carbon.intensity_g_per_kwh == 480.0
    assert info.projection == ProjectionSettings(10.0, 0.15, "USD", "")
    assert info.machine["host"] == "vm" and info.versions["compresslab"] == "0.1.0"
    assert info.tokens_per_inference is None and info.unit == "inference"
    caps = info.capabilities
    assert caps is not None and caps.device == "cpu" and caps.cuda is None
    assert caps.cpu.flags is not None and caps.cpu.flags["avx512f"] is True
    assert caps.torch.quantized_engines[-1] == "fbgemm"
    assert caps.libraries["torchao"].present and caps.libraries["torchao"].version == "0.18.0"
    # Read from the study as a whole, not from the stored context.
    [session] = info.sessions
    assert session.state == "finished" and session.energy_j == pytest.approx(140.5228, rel=1e-6)
    assert session.parts["setup"].cpu_s == pytest.approx(15.9187, rel=1e-4)
    assert session.coefficients == {"watts_per_core": 7.0, "watts_per_gb": 0.375}
    assert info.prediction == PredictionStatus(
        "1 of the 8 variants measured on this machine that a calibration needs"
    )
    assert info.calibrations == {} and info.importance is None and info.repeatability is None


def test_the_context_written_reads_back_equal_without_what_the_study_tells() -> None:
    study = optuna.create_study()
    info = StudyInfo(
        task="t",
        eval_examples=12,
        tokens_per_inference=40.0,
        carbon=CarbonIntensity("FR", 55.0, "table", 1.2),
        machine={"host": "h"},
        versions={"torch": None},
        sessions=(SessionEnergy(energy_j=3.0, parts={"setup": PartTime(1.0, 1.0, 0.1)}),),
        prediction=PredictionStatus("predicting"),
    )
    attrs.write_report_info(study, info)
    stored = study.user_attrs[attrs.REPORT_INFO]
    assert not set(STUDY_DERIVED) & set(stored)
    derived = {name: getattr(StudyInfo(), name) for name in STUDY_DERIVED}
    assert attrs.read_report_info(study.user_attrs) == dataclasses.replace(info, **derived)


def test_an_older_or_newer_context_reads_with_defaults() -> None:
    stored = {
        "task": None,  # null: the default
        "carbon": {},  # empty: the default (none)
        "capabilities": {},
        "projection": {"currency": "EUR"},  # the rest: defaults
        "a_field_of_a_later_version": [1, 2],
        "search_energy": [{"energy_j": 1.0}],  # never stored as context: ignored
    }
    info = attrs.read_report_info({attrs.REPORT_INFO: stored})
    assert info == StudyInfo(projection=ProjectionSettings(currency="EUR"))
    assert attrs.read_report_info({}) == StudyInfo()


def test_a_context_that_does_not_fit_names_the_field() -> None:
    with pytest.raises(StorageError, match=r"StudyInfo\.eval_examples.*another compresslab"):
        attrs.read_report_info({attrs.REPORT_INFO: {"eval_examples": "many"}})


def test_a_session_entry_reads_typed_with_its_state() -> None:
    entry = {"session": "s", "energy_j": 2, "finished": True, "parts": {"setup": {"wall_s": 1}}}
    session = from_json(SessionEnergy, {**entry, "state": "finished"})
    assert session.energy_j == 2.0 and session.parts["setup"] == PartTime(wall_s=1.0)
