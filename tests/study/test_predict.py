"""Prediction that saves measurements: a variant predicted far above the frontier is skipped.

The studies here are fakes (Optuna in memory, trials with the attributes a search writes) and
the variants' energies follow known per-operation costs, so what the calibration predicts is
known; the Objective is driven with a fake bench that records which variants were measured.
"""

from __future__ import annotations

import dataclasses
import math
import random
from pathlib import Path
from typing import Any

import optuna
import pytest
from record_builders import energy as energy_result
from tests_support import small

from compresslab.api import load_recipe
from compresslab.bench import PartTimer
from compresslab.modeled.calibration import features, machine_id
from compresslab.records import Evaluation, OpCounts, PairedRatio, from_json, to_json
from compresslab.study import (
    Objective,
    SearchSpace,
    attrs,
    counts_towards_budget,
    records_from_study,
)
from compresslab.study.predict import MACHINE_ATTR, PredictedDominated, Predictor

COST = [2e-10, 0.0, 9e-10, 5e-11, 3e-9, 1e-11, 2e-4]  # J per unit of each feature
BASE_J = 1e-3
HERE = machine_id()


def _counts(macs: float, fmt: str = "fp32") -> dict[str, Any]:
    return {
        "macs": {fmt: macs},
        "weight_bytes": macs / 20,
        "activation_bytes_per_example": macs / 100,
        "input_bytes_per_example": 256.0,
        "batch_size": 256,
    }


def _energy(counts: dict[str, Any]) -> float:
    return sum(c * x for c, x in zip(COST, features(counts), strict=True))


def _add(
    study: Any,
    number: int,
    *,
    acc: float,
    counts: dict[str, Any],
    factor: float = 1.0,
    machine: str = HERE,
) -> None:
    """A measured trial as the search stores it (paired ratio x the baseline's figure)."""
    energy = _energy(counts) * factor
    base = number == 0
    study.add_trial(
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.COMPLETE,
            values=[acc, energy / BASE_J],
            user_attrs={
                "variant": f"v{number}",
                "is_baseline": base,
                "format": 1,
                "evaluation": to_json(
                    Evaluation(
                        metric=acc,
                        metric_ci95=(acc, acc),
                        energy=energy_result(BASE_J if base else energy),
                        vs_baseline=PairedRatio(
                            ratio=1.0 if base else energy / BASE_J, ci95_low=0.0, ci95_high=9.0
                        ),
                        op_counts=from_json(OpCounts, counts),
                    )
                ),
                MACHINE_ATTR: machine,
            },
        )
    )


def _fake_study(n: int = 10, *, noise: float = 0.15, machine: str = HERE) -> Any:
    """A baseline (1 mJ) and variants whose energies follow COST (with +/- noise)."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    base_counts = _counts(BASE_J / _energy(_counts(1.0e6)) * 1.0e6)  # about 1 mJ
    _add(study, 0, acc=0.99, counts=base_counts, factor=BASE_J / _energy(base_counts))
    rng = random.Random(1)
    for i in range(1, n):
        macs = rng.uniform(0.2, 1.0) * 1.0e6 * 4
        fmt = ("fp32", "bf16", "int8")[i % 3]
        _add(
            study,
            i,
            acc=0.99 - 0.01 * rng.random(),
            counts=_counts(macs, fmt),
            factor=math.exp(noise * (1 if i % 2 else -1) * rng.random()),
            machine=machine,
        )
    return study


def _predictor(**kw: Any) -> Predictor:
    return Predictor(min_accuracy=0.97, min_measured=kw.get("min_measured", 8), max_error=0.5)


def test_a_variant_predicted_far_above_the_frontier_is_not_measured() -> None:
    study = _fake_study()
    predictor = _predictor()
    # Four times the baseline's operations in fp32, and no more accurate than it.
    far = _counts(4 * 1.6e6)
    with pytest.raises(PredictedDominated) as e:
        predictor.check(study, metric=0.985, op_counts=far)
    p = e.value.prediction
    assert p.j_per_inference == pytest.approx(_energy(far), rel=0.35)
    assert 0 < p.error_rel <= 0.5
    assert p.optimistic_j_per_inference == pytest.approx(p.j_per_inference * (1 - p.error_rel))
    assert p.dominating_accuracy >= 0.985
    assert p.dominating_j_per_inference < p.optimistic_j_per_inference
    assert p.provenance == "modeled" and p.calibration.n == 10
    assert "predicted dominated" in p.reason and f"trial {p.dominated_by}" in p.reason
    # The calibration is stored with the study, under this machine's id.
    assert study.user_attrs[f"calibration:{HERE}"]["n"] == 10


def test_a_variant_near_the_frontier_is_measured() -> None:
    study = _fake_study()
    predictor = _predictor()
    trials = study.get_trials()
    # Predicted 10% dearer than the cheapest feasible variant, at its accuracy: within the
    # stated error, so it might be cheaper: measured.
    cheapest = attrs.read(
        min((t for t in trials if t.values[0] >= 0.97), key=lambda t: t.values[1])
    ).evaluation
    assert cheapest is not None
    counts = cheapest.op_counts
    near = dataclasses.replace(counts, macs={k: v * 1.1 for k, v in counts.macs.items()})
    predictor.check(study, metric=0.99, op_counts=near)  # does not raise ...
    assert predictor.status.startswith("predicting:"), predictor.status  # ... yet it predicted
    cal = predictor.calibration(study)
    assert cal is not None
    cheapest_j = min(t.values[1] for t in trials if t.values[0] >= 0.97) * BASE_J
    assert cal.predict(near) * (1 - cal.error_rel) < cheapest_j  # might be cheaper
    # More accurate than every measured variant: nothing dominates it, however dear.
    far = _counts(4 * 1.6e6)
    predictor.check(study, metric=0.999, op_counts=far)
    assert predictor.status.startswith("predicting:"), predictor.status
    assert cal.predict(far) * (1 - cal.error_rel) > cheapest_j  # dear, but not dominated


def test_no_prediction_before_enough_variants_or_with_a_poor_model() -> None:
    far = _counts(4 * 1.6e6)
    few = _fake_study(n=7)
    predictor = _predictor()
    predictor.check(few, metric=0.98, op_counts=far)  # 7 of 8 measured: no prediction
    assert "7 of the 8" in predictor.status
    noisy = _fake_study(noise=3.0)
    predictor = _predictor()
    predictor.check(noisy, metric=0.98, op_counts=far)
    assert "not trusted" in predictor.status


def test_variants_measured_on_another_machine_are_not_fitted() -> None:
    study = _fake_study(machine="another-machine")
    predictor = _predictor()
    predictor.check(study, metric=0.98, op_counts=_counts(4 * 1.6e6))
    assert "1 of the 8" in predictor.status  # only the baseline was measured here


# --- the Objective: the skip is a PRUNED trial with `predicted`, counted, reused --------------


@pytest.mark.slow
def test_the_objective_records_a_predicted_dominated_variant(
    tmp_path: Path, digits_task: Any
) -> None:
    recipe = load_recipe(
        small(
            tmp_path,
            compression=[
                {"method": "prune_channels", "params": {"ratio": {"choices": [0.1, 0.2, 0.3]}}},
                {"method": "dynamic_int8"},
                {"method": "bf16"},
            ],
            search={"trials": 12, "sampler": "grid", "screen_examples": 0},
        )
    )
    space = SearchSpace.from_recipe(recipe.compression)
    from compresslab.protocol import select_for

    objective = Objective(
        recipe=recipe,
        task=digits_task,
        space=space,
        selection=select_for(recipe.energy),
        min_accuracy=0.97,
        target=12,
        predictor=Predictor(min_accuracy=0.97, min_measured=8, max_error=0.5),
    )
    measured: list[str] = []
    rng = random.Random(2)

    def fake_evaluate(spec: Any, *, gate: Any = None, **_: Any) -> Evaluation:
        label = spec.label()
        objective.bench.last_parts = timer = PartTimer()
        # Variants with bf16 are four times the baseline's work here, at a lower accuracy.
        macs = 1.6e6 * (4 if "bf16" in label else rng.uniform(0.3, 1.0))
        counts = from_json(OpCounts, _counts(1.6e6 if spec.is_baseline else macs))
        acc = 0.99 if spec.is_baseline else (0.975 if "bf16" in label else 0.985)
        if gate is not None:
            gate(acc, counts)
        timer.lap("measure")
        measured.append(label)
        energy = BASE_J if spec.is_baseline else _energy(counts) * rng.uniform(0.95, 1.05)
        ratio = energy / BASE_J
        return Evaluation(
            metric=acc,
            metric_ci95=(acc - 0.01, acc + 0.01),
            energy=energy_result(energy),
            vs_baseline=PairedRatio(ratio=ratio, ci95_low=ratio, ci95_high=ratio),
            op_counts=counts,
            parts=timer.times(),
        )

    objective.bench.evaluate = fake_evaluate  # type: ignore[method-assign]
    study = optuna.create_study(
        directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=0)
    )
    study.enqueue_trial(space.baseline_params(), user_attrs={"is_baseline": True})
    grid = [p for p in space.grid() if p != space.baseline_params()]
    # The bf16 variants last, so that 8 others are measured first.
    for point in sorted(grid, key=lambda p: p.get("quantize") == "bf16"):
        study.enqueue_trial(point)
    study.enqueue_trial(grid[-1])  # a repeat of the last bf16 variant
    study.optimize(objective, n_trials=len(grid) + 2)

    trials = study.get_trials()
    predicted = [t for t in trials if "predicted" in t.user_attrs]
    assert predicted and all("bf16" in t.user_attrs["variant"] for t in predicted)
    assert all(t.state.name == "PRUNED" for t in predicted)
    assert not any(t.user_attrs["variant"] in measured for t in predicted)  # never measured
    first = [t for t in predicted if t.user_attrs.get("reused_from") is None]
    repeat = [t for t in predicted if t.user_attrs.get("reused_from") is not None]
    assert len(repeat) == 1 and all(counts_towards_budget(t) for t in first)
    assert not counts_towards_budget(repeat[0])
    for t in first:  # what is known was recorded: the prediction and the time spent
        stored = attrs.read(t)
        assert stored.evaluation is None and "measure" not in stored.parts
        assert stored.prediction is not None and stored.prediction.accuracy == 0.975
    records = records_from_study(study, min_accuracy=0.97)
    skipped = [r for r in records if r.predicted is not None and r.reused_from is None]
    assert len(skipped) == len(first) and all(r.evaluated for r in skipped)
