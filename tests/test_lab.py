from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd
import pytest
import torch
from tests_support import sample_result, small, with_evaluation

import compresslab
from compresslab import Study, units
from compresslab.errors import InvalidArgumentError, StorageError
from compresslab.export import load_variant
from compresslab.records import PairedRatio, SearchResult
from compresslab.report.plot import FRONTIER_LABEL
from compresslab.report.table import COLUMNS, frontier_frame


def _recipe(tmp: Path, *, trials: int, name: str = "small") -> dict[str, Any]:
    # A wide tolerance, so that pruned variants are measured and the frontier has several.
    search = {"trials": trials, "sampler": "random", "seed": 1, "tolerance": {"absolute": 0.3}}
    return small(tmp, name=name, search=search)


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory, digits_task: Any) -> Study:
    """One real (tiny) search, shared by the read-only tests of this module."""
    tmp = tmp_path_factory.mktemp("lab")
    return compresslab.search(_recipe(tmp, trials=4), progress=False)


def _handmade(tmp_path: Path, **changes: Any) -> Study:
    result = sample_result()
    return Study(compresslab.load_recipe(small(tmp_path)), dataclasses.replace(result, **changes))


@pytest.mark.slow
def test_trials_and_frontier_are_the_reports_dataframes(study: Study) -> None:
    trials, front = study.trials, study.frontier
    assert isinstance(trials, pd.DataFrame) and isinstance(front, pd.DataFrame)
    assert list(trials.columns[: len(COLUMNS)]) == COLUMNS
    assert all(c.startswith("param.") for c in trials.columns[len(COLUMNS) :])
    assert trials["trial"].tolist() == [r.number for r in study.result.trials]
    assert front["trial"].tolist() == [r.number for r in study.result.frontier]
    assert len(front) >= 1, "the baseline at least is feasible"
    pd.testing.assert_frame_equal(front, frontier_frame(study.result))
    assert front["pareto"].all() and front["feasible"].all()
    assert (front["provenance"] == "estimated").all()
    assert study.baseline is not None and bool(study.baseline["baseline"])


@pytest.mark.slow
def test_best_is_the_cheapest_within_the_tolerance_or_a_given_drop(study: Study) -> None:
    best = study.best()
    assert best is not None
    saving = study.result.best_saving()
    assert saving is not None and best["trial"] == saving.number
    measured = study.trials[
        study.trials["state"].eq("COMPLETE") & study.trials["reused_from"].isna()
    ]
    base_acc = study.result.baseline_accuracy
    for drop in (0.0, 0.005, 0.02, 0.1, 0.3):
        pick = study.best(max_drop=drop)
        assert pick is not None
        allowed = measured[measured["accuracy"] >= base_acc - drop]
        assert pick["accuracy"] >= base_acc - drop
        assert pick["energy_j_per_inference"] == allowed["energy_j_per_inference"].min()
    assert study.best(max_drop=0.0)["accuracy"] >= base_acc  # type: ignore[index]


def test_best_on_a_handmade_result(tmp_path: Path) -> None:
    study = _handmade(tmp_path)
    assert study.best()["trial"] == 1  # type: ignore[index]
    assert study.best(max_drop=0.0)["trial"] == 0  # type: ignore[index]
    assert study.best(max_drop=0.5)["trial"] == 2  # type: ignore[index]  (accuracy 0.5, cheapest)
    with pytest.raises(ValueError, match="max_drop"):
        study.best(max_drop=-0.1)
    nothing = _handmade(tmp_path, trials=sample_result().trials[3:])  # only the failed trial
    assert nothing.best() is None and nothing.baseline is None


@pytest.mark.slow
def test_build_gives_each_trials_model(study: Study) -> None:
    measured = [r for r in study.result.completed if r.reused_from is None]
    assert any(not r.is_baseline for r in measured)
    for r in measured:
        a, ev = r.accuracy_vs_baseline, r.evaluation
        assert ev is not None and ev.outcomes is not None
        if a is None or a.examples == a.pool:  # scored on the whole pool: the same figure
            assert study.evaluate(study.build(r.number)) == r.accuracy, r.variant
        else:  # a look decided it on a prefix of the pool: its accuracy is on those examples
            assert ev.outcomes.n == a.examples == ev.metric_examples < a.pool, r.variant
            assert r.accuracy == ev.outcomes.successes / a.examples, r.variant
    # a trial is named by its number, its record or its row, all alike
    best = study.best()
    assert best is not None
    x = study.task.eval_inputs[:64]
    models = [study.build(t) for t in (best, int(best["trial"]), study.record(best))]
    with torch.inference_mode():
        outs = [m(x) for m in models]
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2])
    decided = study.record(best).accuracy_vs_baseline
    if decided is None or decided.examples == decided.pool:
        assert study.evaluate(best) == best["accuracy"]
    else:  # decided at an earlier look: on that prefix of the pool
        assert best["accuracy_examples"] == decided.examples


def test_search_refuses_a_budget_below_one(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match=r"trials must be an integer in \[1, "):
        compresslab.search(small(tmp_path), trials=0, progress=False)


@pytest.mark.slow
def test_unknown_trials_are_refused(study: Study) -> None:
    with pytest.raises(InvalidArgumentError, match="trial 999 is not in study 'small'") as e:
        study.build(999)
    assert e.value.argument == "trial"
    with pytest.raises(TypeError, match="named by its number"):
        study.build("best")
    with pytest.raises(TypeError, match="named by its number"):
        study.record(True)


@pytest.mark.slow
def test_export_reloads_to_the_built_model(study: Study, tmp_path: Path) -> None:
    best = study.best()
    assert best is not None
    folder = study.export(best, tmp_path / "best")
    assert (folder / "weights.safetensors").is_file() and (folder / "measured.json").is_file()
    reloaded = load_variant(folder, task=study.task)
    built = study.build(best)
    x = study.task.eval_inputs
    with torch.inference_mode():
        assert torch.equal(reloaded(x), built(x))


@pytest.mark.slow
def test_measure_a_trial_a_model_or_the_baseline(study: Study) -> None:
    best = study.best()
    assert best is not None
    res = study.measure(best)
    assert isinstance(res, compresslab.Measurement) and res.evaluation is None
    assert (res.recipe, res.trial, res.variant) == ("small", best["trial"], best["variant"])
    assert str(res.provenance) == "estimated" and res.energy_j_per_inference > 0
    assert res.energy.batch_size == 32 and res.energy.windows == 2  # the recipe's protocol
    mlp = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    mine = study.measure(mlp, inputs=torch.rand(8, 1, 8, 8), sampler="model")
    assert str(mine.provenance) == "modeled" and mine.energy.batch_size == 8
    assert mine.variant is None and mine.trial is None
    base = study.measure()
    assert str(base.provenance) == "estimated" and base.variant == "baseline"


@pytest.mark.slow
def test_measuring_a_trial_again_learns_the_machines_repeatability(study: Study) -> None:
    from compresslab.protocol.repeatability import UNKNOWN

    best = study.best()
    assert best is not None
    first = [study.measure(best).energy for _ in range(3)]
    assert all(r.repeatability_source == UNKNOWN for r in first)  # a fresh store: unknown
    assert all(r.ci95_j_per_inference == r.ci95_windows_j_per_inference for r in first)
    fourth = study.measure(best).energy
    assert f"3 standalone measurements of small: {best.variant}" in str(fourth.repeatability_source)
    assert fourth.repeatability_rel is not None and fourth.repeatability_rel >= 0
    assert fourth.ci95_j_per_inference >= fourth.ci95_windows_j_per_inference


@pytest.mark.slow
def test_plot_draws_the_frontier_tolerance_and_baseline(study: Study) -> None:
    ax = study.plot()
    try:
        (front,) = [c for c in ax.collections if c.get_label() == FRONTIER_LABEL]
        done = [r for r in study.result.completed if r.reused_from is None]
        factor, unit = units.energy_unit([r.energy_j_per_inference for r in done])
        expected = [
            v
            for r in study.result.frontier
            for v in (r.energy_j_per_inference * factor, r.accuracy)
        ]
        assert front.get_offsets().ravel().tolist() == pytest.approx(expected, rel=1e-12)
        assert f"energy per inference [{unit}]" in ax.get_xlabel()
        (base,) = [c for c in ax.collections if c.get_label() == "baseline (uncompressed)"]
        assert base.get_offsets().tolist()[0][1] == pytest.approx(study.result.baseline_accuracy)
        (tol,) = [ln for ln in ax.get_lines() if ln.get_label().startswith("accuracy tolerance")]
        assert tol.get_ydata()[0] == pytest.approx(study.result.min_accuracy)
        assert "estimated" in ax.get_xlabel()
        assert {t.get_text() for t in ax.texts} == {str(r.number) for r in study.result.frontier}
    finally:
        plt.close(ax.figure)
    fig, given = plt.subplots()
    try:
        assert study.plot(ax=given) is given and given.collections
    finally:
        plt.close(fig)


def test_repr_html_escapes_every_string(tmp_path: Path) -> None:
    result = sample_result()
    evil = "<script>alert(1)</script>"
    trials = [dataclasses.replace(result.trials[1], variant=evil), *result.trials[:1]]
    study = _handmade(tmp_path, trials=trials, tolerance="<b>1 point</b>")
    study.recipe = study.recipe.model_copy(update={"description": "<img src=x onerror=1>"})
    page = study._repr_html_()
    assert "<script>" not in page and "<img" not in page and "<b>1 point" not in page
    assert "&lt;script&gt;" in page and "&lt;img" in page and "&lt;b&gt;1 point" in page
    assert "<table" in page and "Study small" in page
    assert "best within the tolerance: trial 1" in page
    assert "Study 'small'" in repr(study) and "best: trial 1" in repr(study)


def test_a_saving_within_the_confidence_intervals_is_said_so(tmp_path: Path) -> None:
    clear = _handmade(tmp_path)  # 4e-4 +/- 1e-5 against 1e-3 +/- 1e-5
    assert "0.40x the baseline's energy" in repr(clear) and "not a clear saving" not in repr(clear)
    result = sample_result()
    # The pairs put the ratio at 0.99, with an interval that reaches 1.
    close = with_evaluation(
        result.trials[1],
        vs_baseline=PairedRatio(ratio=0.99, ci95_low=0.95, ci95_high=1.03, pairs=4),
    )
    blurred = _handmade(tmp_path, trials=[result.trials[0], close])
    assert "the interval reaches 1: not a clear saving" in blurred._repr_html_()


def test_repr_html_without_a_frontier(tmp_path: Path) -> None:
    study = _handmade(tmp_path, trials=sample_result().trials[3:])
    page = study._repr_html_()
    assert "No feasible variant yet" in page and "best within the tolerance: none" in page


@pytest.mark.slow
def test_search_is_silent_without_progress_and_shows_it_on_request(
    tmp_path: Path, digits_task: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    recipe = _recipe(tmp_path, trials=1, name="quiet")
    matplotlib.use("pdf")  # a backend of the caller's that the report must not replace
    try:
        first = compresslab.search(recipe, progress=False)
        assert matplotlib.get_backend() == "pdf"
    finally:
        matplotlib.use("Agg")
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert [r.number for r in first.result.trials] == [0]

    more = compresslab.search(recipe, trials=2, progress=True)  # resumes: one more variant
    out, err = capfd.readouterr()
    assert out == ""
    assert "search quiet" in err and "2/2" in err
    assert len(more.result.trials) >= 2


@pytest.mark.slow
def test_notebook_progress_is_one_display_updated_in_place(
    tmp_path: Path,
    digits_task: Any,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    display_module = pytest.importorskip("IPython.display")
    shown: list[Any] = []
    updates: list[str] = []

    class Handle:
        def update(self, obj: Any) -> None:
            updates.append(obj._repr_html_())

    def display(obj: Any, *, display_id: bool = False) -> Handle:
        assert display_id
        shown.append(obj)
        return Handle()

    monkeypatch.setattr("rich.console._is_jupyter", lambda: True)
    monkeypatch.setattr(display_module, "display", display)
    compresslab.search(_recipe(tmp_path, trials=2, name="nb"), progress=True)
    assert len(shown) == 1  # one display, then updates in place
    assert updates and "<progress value='2' max='2'" in updates[-1] and "2/2" in updates[-1]
    assert "search nb" in shown[0]._repr_html_() and "search nb 2/2" in repr(shown[0])
    out, err = capfd.readouterr()
    assert out == "" and err == ""


@pytest.mark.slow
def test_open_reads_the_stored_study(study: Study, tmp_path: Path) -> None:
    again = compresslab.open(study.recipe)
    pd.testing.assert_frame_equal(again.trials, study.trials)
    pd.testing.assert_frame_equal(study.reload().frontier, study.frontier)
    assert again.storage == study.storage and again.output_dir == study.output_dir
    with pytest.raises(StorageError, match="no study database"):
        compresslab.open(small(tmp_path, name="never-searched"))


def test_a_handmade_study_keeps_its_records(tmp_path: Path) -> None:
    study = _handmade(tmp_path)
    assert isinstance(study.result, SearchResult) and study.records is study.result
    assert study.trials["trial"].tolist() == [0, 1, 2, 3]
    assert study.frontier["trial"].tolist() == [1, 0]
    assert math.isclose(study.baseline["accuracy"], 0.99)  # type: ignore[index]
    assert study.record(2).variant == "prune_channels(ratio=0.9)"
