"""The one codec between the typed records and JSON."""

from __future__ import annotations

import json
import math

import pytest
from record_builders import energy, evaluation

from compresslab.records import (
    Contention,
    EnergyResult,
    Evaluation,
    PairedRatio,
    RecordFormatError,
    from_json,
    to_json,
)


def test_an_evaluation_survives_json_exactly() -> None:
    ev = evaluation()
    text = json.dumps(to_json(ev))
    assert from_json(Evaluation, json.loads(text)) == ev


def test_enums_and_tuples_become_plain_json() -> None:
    data = to_json(energy())
    assert data["provenance"] == "estimated"
    assert data["window_j_per_inference"] == [1e-3, 1e-3, 1e-3]
    assert data["contention"]["foreign_cpus_mean"] == 0.2


def test_unknown_keys_are_ignored_and_missing_ones_take_their_default() -> None:
    data = to_json(energy())
    data["kwh_per_1k"] = 1.0  # derived, written by to_dict
    data["from_a_newer_version"] = {"x": 1}
    del data["contention"], data["ci95_windows_j_per_inference"]
    read = EnergyResult.from_dict(data)
    assert read.contention == Contention()
    assert read.ci95_windows_j_per_inference == read.ci95_j_per_inference


def test_a_missing_required_figure_is_an_error_naming_it() -> None:
    data = to_json(energy())
    del data["energy_j_per_inference"]
    with pytest.raises(RecordFormatError, match="energy_j_per_inference"):
        EnergyResult.from_dict(data)


def test_a_figure_of_the_wrong_type_is_an_error_naming_its_path() -> None:
    data = to_json(evaluation())
    data["vs_baseline"]["ratio"] = "half"
    with pytest.raises(RecordFormatError, match=r"vs_baseline\.ratio"):
        from_json(Evaluation, data)


def test_nan_stays_a_float_and_optional_fields_read_none() -> None:
    ev = Evaluation(
        metric=0.5, metric_ci95=(0.4, 0.6), energy=energy(), vs_baseline=PairedRatio.itself()
    )
    back = from_json(Evaluation, json.loads(json.dumps(to_json(ev))))
    assert math.isnan(back.modeled_j_per_inference)
    assert back.reference_energy is None and back.quality.empty
