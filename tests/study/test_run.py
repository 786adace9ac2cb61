"""A finished search teaches this machine's repeatability store."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from compresslab.machine import machine_id
from compresslab.protocol.repeatability import RepeatabilityStore, tier_of
from compresslab.stats import cv
from compresslab.study.predict import MACHINE_ATTR
from compresslab.study.run import learn_repeatability


def trial(j: float | None, *, machine: str, state: str = "COMPLETE") -> SimpleNamespace:
    ref = None if j is None else {"energy_j_per_inference": j, "sampler": "estimate"}
    if ref is not None:
        ref["provenance"] = "estimated"
    return SimpleNamespace(
        state=SimpleNamespace(name=state),
        user_attrs={"reference_energy": ref, MACHINE_ATTR: machine},
    )


def fake_study(trials: list[Any]) -> SimpleNamespace:
    return SimpleNamespace(study_name="digits", get_trials=lambda deepcopy=False: trials)


def test_the_baseline_beside_each_variant_here_becomes_the_machines_term(
    repeatability_store: Path,
) -> None:
    here, there = machine_id(), "0123456789ab"
    mine = [1.0, 1.1, 0.9, 1.05]
    trials = [trial(None, machine=here)]  # the baseline trial: no reference side
    trials += [trial(j, machine=here) for j in mine]
    trials += [trial(5.0, machine=there), trial(9.0, machine=there)]  # a fleet's other worker
    trials += [trial(3.0, machine=here, state="FAIL")]
    kept = learn_repeatability(fake_study(trials), "sqlite:///x/study.db")
    assert kept == {"estimate/estimated": 4}

    term = RepeatabilityStore().term(tier_of("estimate", "estimated"))
    assert term is not None
    assert term.n == 4 and term.cv == pytest.approx(cv(mine))  # this machine's trials only
    assert "4 baseline measurements of study digits" in term.source
    assert str(repeatability_store) in str(RepeatabilityStore().path)


def test_a_study_with_too_few_baseline_measurements_teaches_nothing() -> None:
    trials = [trial(1.0, machine=machine_id()), trial(1.2, machine=machine_id())]
    assert learn_repeatability(fake_study(trials), "sqlite:///x/study.db") == {}
    assert RepeatabilityStore().term(tier_of("estimate", "estimated")) is None
    assert not RepeatabilityStore().path.exists()
