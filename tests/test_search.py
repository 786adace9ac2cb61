from __future__ import annotations

import shutil
from pathlib import Path

import optuna
import pytest
from record_builders import energy
from tests_support import small

from compresslab.api import load_recipe, search
from compresslab.records import Evaluation, TrialRecord, pareto_front


def _non_dominated(records: list[TrialRecord]) -> set[int]:
    """Independent brute-force frontier over (accuracy up, energy down), feasible only."""
    pool = [r for r in records if r.complete and r.feasible and r.reused_from is None]
    out = set()
    for r in pool:
        beaten = False
        for o in pool:
            if o is r:
                continue
            no_worse = (o.accuracy >= r.accuracy) and (
                o.energy_j_per_inference <= r.energy_j_per_inference
            )
            better = (o.accuracy > r.accuracy) or (
                o.energy_j_per_inference < r.energy_j_per_inference
            )
            beaten = beaten or (no_worse and better)
        if not beaten:
            out.add(r.number)
    return out


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory, digits_task):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("search")
    recipe = load_recipe(small(tmp))
    result = search(recipe, trials=5)
    return recipe, result, tmp


@pytest.fixture
def own_searched(searched, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A copy of the module's searched study and report, for a test that writes to them.

    Resuming the study or rewriting its report in the shared folder changed what the other
    tests of this module read (they passed only in file order); the copy keeps them apart.
    """
    recipe, result, tmp = searched
    shutil.copytree(tmp / "reports", tmp_path / "reports")
    mine = load_recipe(small(tmp_path))
    assert mine.output_dir() != recipe.output_dir()
    return mine, result, tmp_path


@pytest.mark.slow
def test_small_search_end_to_end(searched) -> None:  # type: ignore[no-untyped-def]
    recipe, result, tmp = searched
    distinct = [t for t in result.trials if t.evaluated]
    assert len(distinct) == 5
    first = result.trials[0]
    assert first.number == 0 and first.is_baseline and first.variant == "baseline"
    assert result.baseline is first
    assert result.baseline_accuracy == first.accuracy
    for t in result.completed:
        # Each variant's accuracy is compared with the baseline's on the same examples.
        claim = t.accuracy_vs_baseline
        assert claim is not None and claim.paired and claim.method == "newcombe-paired"
        assert claim.low <= claim.delta <= claim.high and claim.examples == 360
        assert claim.decision in ("within", "below", "undecided")
        assert t.evaluation is not None and t.evaluation.outcomes is not None
        assert t.energy is not None
        assert t.energy.provenance == "estimated"
        assert t.energy.energy_j_per_inference > 0
        assert t.energy.windows >= 2
        assert t.profile.macs_per_inference and t.profile.macs_per_inference > 0
        assert t.modeled_j_per_inference and t.modeled_j_per_inference > 0
    out = recipe.output_dir()
    header = (out / "trials.csv").read_text().splitlines()[0].split(",")
    assert {"accuracy_delta_low", "accuracy_decision", "accuracy_method"} <= set(header)
    assert (out / "study.db").is_file()
    for name in ("trials.csv", "pareto.png", "report.md"):
        assert (out / name).stat().st_size > 0


@pytest.mark.slow
def test_reported_frontier_is_the_non_dominated_set(searched) -> None:  # type: ignore[no-untyped-def]
    _, result, _ = searched
    front = {r.number for r in result.frontier}
    assert front == _non_dominated(result.trials)
    assert front, "the baseline at least is feasible"
    assert all(r.feasible for r in result.frontier)


@pytest.mark.slow
def test_frontier_agrees_with_optuna_best_trials(searched) -> None:  # type: ignore[no-untyped-def]
    recipe, result, _ = searched
    study = optuna.load_study(study_name=recipe.study_name, storage=result.storage)
    optuna_front = {t.number for t in study.best_trials}
    reused = {t.number for t in result.trials if t.reused_from is not None}
    # Optuna lists a re-measured duplicate as well; ours keeps each variant once.
    assert {r.number for r in result.frontier} == optuna_front - reused


@pytest.mark.slow
def test_same_command_resumes_the_study(own_searched) -> None:  # type: ignore[no-untyped-def]
    recipe, first, _ = own_searched
    again = search(recipe, trials=7)
    assert again.storage != first.storage  # the copy was resumed, not the shared study
    before = {t.number: t for t in first.trials}
    # Nothing completed before was lost or re-measured; the baseline was not enqueued twice.
    for number, t in before.items():
        assert again.trials[number].variant == t.variant
        assert again.trials[number].energy == t.energy
    assert sum(1 for t in again.trials if t.evaluated) == 7
    assert sum(1 for t in again.trials if t.is_baseline and t.reused_from is None) == 1


@pytest.mark.slow
def test_a_failing_variant_is_a_failed_trial_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from compresslab.compress.quantize import DynamicInt8
    from compresslab.errors import VariantError

    def broken(self, model, params, ctx):  # type: ignore[no-untyped-def]
        raise VariantError("simulated breakage")

    monkeypatch.setattr(DynamicInt8, "apply", broken)
    recipe = load_recipe(
        small(tmp_path, compression=[{"method": "dynamic_int8"}], search={"trials": 1})
    )
    result = search(recipe, trials=2)
    failed = result.failed
    assert failed and all("simulated breakage" in (t.error or "") for t in failed)
    assert result.baseline is not None  # the search went on
    assert "simulated breakage" in (recipe.output_dir() / "report.md").read_text()


def test_pareto_front_on_hand_made_records() -> None:
    def rec(n: int, acc: float, j: float, feasible: bool = True) -> TrialRecord:
        return TrialRecord(
            number=n,
            state="COMPLETE",
            variant=f"v{n}",
            is_baseline=n == 0,
            feasible=feasible,
            evaluation=Evaluation(
                metric=acc, metric_ci95=(acc, acc), energy=energy(j), vs_baseline=None
            ),
        )

    records = [
        rec(0, 0.99, 10.0),
        rec(1, 0.98, 5.0),
        rec(2, 0.97, 6.0),  # dominated by 1
        rec(3, 0.99, 10.0),  # equal to 0: neither dominates
        rec(4, 0.50, 1.0, feasible=False),
    ]
    assert [r.number for r in pareto_front(records)] == [1, 0, 3]
    assert 4 in {r.number for r in pareto_front(records, feasible_only=False)}


@pytest.mark.slow
def test_report_regenerates_from_storage_alone(own_searched, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import compresslab.study.run as search_mod
    from compresslab.api import rebuild_report

    recipe, result, _ = own_searched
    out = recipe.output_dir()
    (out / "report.md").unlink()
    (out / "report.html").unlink()

    def no_model(spec):  # type: ignore[no-untyped-def]
        raise AssertionError("report must not load the model")

    monkeypatch.setattr(search_mod, "load_task", no_model)
    again = rebuild_report(recipe)
    assert (out / "report.md").is_file() and (out / "report.html").is_file()
    assert again.storage != result.storage  # read from the copy
    study = optuna.load_study(study_name=recipe.study_name, storage=again.storage)
    assert [t.number for t in again.trials] == [t.number for t in study.get_trials()]
    assert {r.number for r in again.frontier} == {t.number for t in study.best_trials} - {
        r.number for r in again.trials if r.reused_from is not None
    }
    assert again.info.task == result.info.task


@pytest.mark.slow
def test_search_energy_and_break_even_come_from_the_study(searched) -> None:  # type: ignore[no-untyped-def]
    from compresslab.report.figures import search_cost

    _, result, _ = searched
    sessions = result.info.sessions
    assert sessions and all(s.energy_j > 0 for s in sessions)
    assert {s.provenance for s in sessions} == {"estimated"}
    cost = search_cost(result)
    assert cost is not None and cost.energy_j == sum(s.energy_j for s in sessions)
    best, base = result.best_saving(), result.baseline
    if best is not None and base is not None and best is not base:
        saving = base.energy_j_per_inference - best.energy_j_per_inference
        assert cost.break_even_inferences == pytest.approx(cost.energy_j / saving)


@pytest.mark.slow
def test_screening_skips_energy_for_clearly_infeasible_variants(tmp_path: Path) -> None:
    recipe = load_recipe(
        small(
            tmp_path,
            compression=[{"method": "prune_channels", "params": {"ratio": 0.9}}],
            search={"trials": 2, "sampler": "grid", "screen_examples": 100},
        )
    )
    result = search(recipe)
    pruned = [t for t in result.trials if not t.is_baseline]
    assert len(pruned) == 1
    t = pruned[0]
    assert t.state == "PRUNED" and t.energy is None
    assert t.screened and "energy not measured" in t.screened
    assert t.screen_accuracy is not None and t.screen_accuracy < result.min_accuracy
    assert result.screened == [t]


@pytest.mark.slow
def test_a_variant_is_measured_unless_decided_below_and_feasible_only_when_within(
    tmp_path: Path,
) -> None:
    """The paired comparison decides: below is never measured, undecided is never feasible."""
    from compresslab.bench import Screened, VariantBench, baseline_outcomes
    from compresslab.compress import Step, VariantSpec
    from compresslab.study.objective import constraint
    from compresslab.tasks import load_task

    recipe = load_recipe(small(tmp_path, search={"trials": 2, "screen_examples": 0}))
    bench = VariantBench(recipe=recipe, task=load_task(recipe.task))
    base = baseline_outcomes(bench)
    base_accuracy = base.successes / base.n
    spec = VariantSpec((Step("prune_channels", {"ratio": 0.3}),))
    # Measured at a loose tolerance, to read its paired difference and interval.
    loose = bench.evaluate(spec, min_accuracy=0.0)
    claim = loose.accuracy_vs_baseline
    assert claim is not None and claim.decision == "within" and claim.paired
    assert claim.examples == base.n and constraint(loose, 0.0) <= 0
    # A tolerance the whole interval lies below: decided below, so never measured.
    with pytest.raises(Screened, match="below the tolerance") as caught:
        bench.evaluate(spec, min_accuracy=base_accuracy + claim.high + 1e-3)
    assert caught.value.accuracy == pytest.approx(loose.metric)
    assert "energy not measured" in caught.value.reason
    assert "on the same 360 examples (paired)" in caught.value.reason
    # A tolerance inside the interval: undecided, measured, and never feasible.
    middle = base_accuracy + claim.delta
    undecided = bench.evaluate(spec, min_accuracy=middle)
    assert undecided.accuracy_vs_baseline is not None
    assert undecided.accuracy_vs_baseline.decision == "undecided"
    assert undecided.energy.energy_j_per_inference > 0
    assert constraint(undecided, middle) > 0


@pytest.mark.slow
def test_a_search_stores_its_calibration_even_before_it_could_predict(tmp_path: Path) -> None:
    """Fewer variants than predict_min_measured: no prediction, yet the fit is kept and said."""
    from compresslab.modeled.calibration import machine_id

    recipe = load_recipe(
        small(
            tmp_path,
            compression=[
                {"method": "prune_channels", "params": {"ratio": {"choices": [0.1, 0.3]}}}
            ],
            search={
                "trials": 3,
                "sampler": "grid",
                "screen_examples": 0,
                "tolerance": {"absolute": 0.5},
                "confirm_pairs": 0,
                "predict_min_measured": 100,
            },
        )
    )
    result = search(recipe)
    assert len(result.measured) == 3 and not result.predicted
    stored = result.info.calibrations
    assert list(stored) == [machine_id()]
    cal = stored[machine_id()]
    assert cal.n == 3 and cal.loo is not None
    assert sorted(cal.trials) == sorted(r.number for r in result.measured)
    assert cal.identified and all(c >= 0 for c in cal.coefficients.values())


@pytest.mark.slow
def test_grid_sampler_evaluates_every_variant_once(tmp_path: Path) -> None:
    recipe = load_recipe(
        small(
            tmp_path,
            compression=[
                {"method": "prune_channels", "params": {"ratio": {"choices": [0.1, 0.2]}}},
                {"method": "dynamic_int8"},
            ],
            search={"trials": 6, "sampler": "auto", "screen_examples": 0},
        )
    )
    from compresslab.study import SearchSpace, sampler_name

    assert sampler_name(recipe) == "grid"  # 3 x 2 = 6 variants fit the budget
    assert len(SearchSpace.from_recipe(recipe.compression).grid()) == 6
    result = search(recipe)
    evaluated = [t for t in result.trials if t.evaluated]
    assert len(evaluated) == 6
    assert len({t.variant for t in evaluated}) == 6
    assert result.info.optuna_sampler == "grid"


def test_grid_needs_steps_for_continuous_ranges(tmp_path: Path) -> None:
    from compresslab.errors import RecipeError

    # Refused when the recipe is checked, before any study or model exists.
    with pytest.raises(
        RecipeError, match="field 'search.sampler': an exhaustive grid needs a step"
    ):
        load_recipe(
            small(
                tmp_path,
                compression=[
                    {"method": "prune_channels", "params": {"ratio": {"low": 0.1, "high": 0.5}}}
                ],
                search={"trials": 3, "sampler": "grid"},
            )
        )
    assert not (tmp_path / "reports").exists()


@pytest.mark.slow
def test_runtime_knobs_are_searched_and_recorded(tmp_path: Path) -> None:
    recipe = load_recipe(
        small(
            tmp_path,
            compression=[{"method": "dynamic_int8"}],
            runtime={"threads": {"choices": [1, 2]}, "batch_size": 16},
            search={"trials": 5, "sampler": "grid", "screen_examples": 0},
        )
    )
    result = search(recipe)
    labels = {t.variant for t in result.trials if t.evaluated}
    assert "baseline" in labels  # the enqueued baseline runs at the recipe's settings
    assert {"dynamic_int8 @ threads=1, batch_size=16", "baseline @ threads=2, batch_size=16"} <= (
        labels
    )
    runs = [t for t in result.completed if "batch_size=16" in t.variant]
    assert runs and all(t.energy and t.energy.batch_size == 16 for t in runs)
    base = result.baseline
    assert base is not None and base.energy and base.energy.batch_size == 32


def test_bad_runtime_knob_is_a_recipe_error(tmp_path: Path) -> None:
    from compresslab.errors import RecipeError

    with pytest.raises(
        RecipeError, match="field .runtime.threads.: `threads` values must be integers"
    ):
        load_recipe(small(tmp_path, runtime={"threads": {"choices": [0, 2]}}))


@pytest.mark.slow
def test_export_a_trial_and_reload_it(tmp_path: Path) -> None:
    import torch

    from compresslab.api import export_trial
    from compresslab.bench import VariantBench
    from compresslab.export import ExportRequest, load_variant
    from compresslab.study import trial_variant
    from compresslab.tasks import load_task

    recipe = load_recipe(
        small(
            tmp_path,
            compression=[
                {"method": "prune_channels", "params": {"ratio": 0.2}},
                {"method": "dynamic_int8"},
            ],
            search={"trials": 4, "sampler": "grid", "screen_examples": 0},
        )
    )
    result = search(recipe)
    trial = next(t for t in result.completed if t.variant.startswith("prune_channels(ratio=0.2) +"))
    out = export_trial(
        ExportRequest(recipe=recipe, trial=trial.number, out_dir=tmp_path / "artefact")
    )
    for name in ("recipe.yaml", "variant.json", "weights.safetensors", "versions.json"):
        assert (out / name).is_file(), name
    task = load_task(recipe.task)
    reloaded = load_variant(out, task=task)
    spec, _ = trial_variant(recipe, trial.number, storage=result.storage)
    built = VariantBench(recipe=recipe, task=task).build(spec)
    x = task.eval_inputs[:16]
    assert torch.equal(reloaded(x), built(x))


def test_power_limit_knob_is_left_out_without_a_gpu(tmp_path: Path, hidden_nvml: None) -> None:
    from compresslab.study import SearchSpace

    recipe = load_recipe(small(tmp_path, runtime={"power_limit_w": {"choices": [150, 250]}}))
    space = SearchSpace.from_recipe(recipe.compression, recipe.runtime)
    assert "power_limit_w" not in space.runtime
    # The host's NVML is hidden (no driver), whatever GPU this machine has.
    assert space.skipped["runtime.power_limit_w"].startswith(
        "needs an NVIDIA GPU: NVML library not found"
    )
