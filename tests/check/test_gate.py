"""The planted pair through the real gate: baseline, then check, decided on paired outcomes.

The user's repository (:func:`gate_support.planted_repo`) evaluates a planted pool; the
baseline is made with its plain model, then :func:`gate_support.set_flipped` changes the code
so that the marked examples' answers flip: the candidate is exactly ``(helped - hurt) / pool``
away from the baseline, on known examples. The energy is the modeled tier, so nothing timed
decides (the gate says it compares no energy, and its outcome is at best inconclusive, which
``check.on_inconclusive: pass`` lets through).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from gate_support import forget_imports, planted_repo, set_flipped

from compresslab.api import energy_gate, load_recipe, update_baseline
from compresslab.check import BaselineRequest, GateInputError, GateRequest, read_baseline
from compresslab.check.verdict import Verdict
from compresslab.records import Outcomes, from_json

pytestmark = pytest.mark.slow  # each builds, captures and evaluates a model (seconds)


@pytest.fixture
def planted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Path]]:
    """Make a planted repository importable (its ``mymodels`` imported afresh)."""

    def make(**kw: object) -> Path:
        repo = planted_repo(tmp_path / "user", **kw)  # type: ignore[arg-type]
        monkeypatch.syspath_prepend(str(repo))
        forget_imports()
        return repo

    yield make
    forget_imports()


def _baseline_then_flip(repo: Path) -> tuple[Path, Path]:
    recipe = repo / "recipes" / "planted.yaml"
    baseline = repo / "baselines" / "planted.json"
    update_baseline(BaselineRequest(recipe=load_recipe(recipe), baseline=baseline))
    set_flipped(repo, True)
    forget_imports()  # the candidate is built from the flipped code
    return recipe, baseline


def _gate(recipe: Path, baseline: Path) -> Verdict:
    return energy_gate(GateRequest(recipe=load_recipe(recipe), baseline=baseline))


def test_the_baseline_stores_its_outcomes(planted) -> None:  # type: ignore[no-untyped-def]
    repo = planted(pool=4000, helped=0, hurt=60, check={"max_accuracy_drop": 0.01})
    recipe, baseline = _baseline_then_flip(repo)
    snap = read_baseline(baseline)
    assert snap.format == 3 and snap.outcomes is not None and snap.accuracy_examples == 4000
    outcomes = from_json(Outcomes, snap.outcomes)
    assert outcomes.kind == "correct" and outcomes.n == 4000 and outcomes.successes == 4000
    assert outcomes.examples_id and outcomes.batch_size > 0
    # Compact: packed bits, not a list of 4000 booleans.
    assert len(json.dumps(snap.outcomes)) < 1000


def test_a_planted_one_and_a_half_point_drop_fails_the_gate(planted) -> None:  # type: ignore[no-untyped-def]
    repo = planted(pool=4000, helped=0, hurt=60, check={"max_accuracy_drop": 0.01})
    verdict = _gate(*_baseline_then_flip(repo))
    acc = verdict.accuracy
    assert acc is not None and acc.decision == "below" and acc.method == "newcombe-paired"
    assert acc.delta == pytest.approx(-0.015) and acc.examples == 4000
    assert (acc.better, acc.worse) == (0, 60)
    assert verdict.modeled is not None and verdict.modeled.passed  # accuracy alone fails it
    assert verdict.outcome == "regression" and verdict.exit_code == 1
    assert any(
        "accuracy fell by more than the allowed 1 point" in r and "4000 examples" in r
        for r in verdict.reasons
    )
    data = verdict.to_dict()["accuracy"]
    assert {k: data[k] for k in ("decision", "examples", "method")} == {
        "decision": "below",
        "examples": 4000,
        "method": "newcombe-paired",
    }
    assert data["high"] < -0.01 and "| accuracy (paired, 4000 examples)" in verdict.markdown()


def test_a_planted_zero_point_difference_passes(planted) -> None:  # type: ignore[no-untyped-def]
    repo = planted(pool=4000, helped=30, hurt=30, check={"max_accuracy_drop": 0.01})
    verdict = _gate(*_baseline_then_flip(repo))
    acc = verdict.accuracy
    assert acc is not None and acc.decision == "within" and acc.passed
    assert acc.delta == 0 and (acc.better, acc.worse) == (30, 30)  # the flips did happen
    assert verdict.exit_code == 0
    # Energy is not compared on the modeled tier: that, not accuracy, keeps it inconclusive.
    assert verdict.energy.outcome == "not measured" and verdict.outcome == "inconclusive"
    assert "inconclusive (energy)" in verdict.reasons[-1]


def test_an_undecided_difference_follows_on_inconclusive(planted) -> None:  # type: ignore[no-untyped-def]
    # 0.75 points on 400 examples: a point comparison passes it, the paired interval cannot.
    check = {"max_accuracy_drop": 0.01, "on_inconclusive": "fail"}
    repo = planted(pool=400, helped=0, hurt=3, check=check)
    verdict = _gate(*_baseline_then_flip(repo))
    acc = verdict.accuracy
    assert acc is not None and acc.decision == "undecided" and acc.inconclusive
    assert acc.examples_to_decide is not None and acc.examples_to_decide > 400
    assert verdict.outcome == "inconclusive" and verdict.exit_code == 1
    assert "inconclusive (energy, accuracy)" in verdict.reasons[-1]


def test_outcomes_on_other_examples_say_to_make_the_baseline_again(planted) -> None:  # type: ignore[no-untyped-def]
    repo = planted(pool=4000, helped=0, hurt=60, check={"max_accuracy_drop": 0.01})
    recipe, baseline = _baseline_then_flip(repo)
    grown = recipe.read_text().replace("pool: 4000", "pool: 5000")
    recipe.write_text(grown)
    with pytest.raises(GateInputError) as e:
        _gate(recipe, baseline)
    said = " ".join(str(e.value).split())
    assert e.value.exit_code == 2 and "cannot be paired" in said
    assert f"compresslab baseline RECIPE --out {baseline} --force" in said
    assert "task.options.pool: 4000 -> 5000" in said


def test_a_baseline_without_outcomes_still_gates_and_says_how(planted) -> None:  # type: ignore[no-untyped-def]
    repo = planted(pool=4000, helped=0, hurt=60, check={"max_accuracy_drop": 0.01})
    recipe, baseline = _baseline_then_flip(repo)
    data = json.loads(baseline.read_text())
    older = {k: v for k, v in data.items() if k not in ("outcomes", "accuracy_examples")}
    # Format 2 (a program, no outcomes): its program is evaluated now, paired.
    baseline.write_text(json.dumps({**older, "format": 2}))
    verdict = _gate(recipe, baseline)
    acc = verdict.accuracy
    assert acc is not None and acc.paired and acc.decision == "below"
    assert "program evaluated now" in acc.sentence and verdict.exit_code == 1
    assert any("predates stored per-example outcomes" in w for w in verdict.warnings)
    # Format 1 (figures only): a point comparison, said so.
    first = {k: v for k, v in older.items() if k != "reference"}
    baseline.write_text(json.dumps({**first, "format": 1}))
    verdict = _gate(recipe, baseline)
    acc = verdict.accuracy
    assert acc is not None and acc.method == "point" and not acc.passed
    assert "a point comparison" in acc.sentence and verdict.exit_code == 1
    # With its example count: unpaired, said so.
    baseline.write_text(json.dumps({**first, "format": 1, "accuracy_examples": 4000}))
    acc = _gate(recipe, baseline).accuracy
    assert acc is not None and acc.method == "wilson-unpaired" and not acc.paired
    assert "unpaired" in acc.sentence and acc.decision in ("below", "undecided")
