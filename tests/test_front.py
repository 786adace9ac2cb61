"""One front door: ``compresslab.<name>`` takes a recipe in any form, returns one type per kind of
result (a Study, a Comparison, a Measurement), and raises one error for one bad argument."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from tests_support import FAST_ENERGY, small
from torch import nn

import compresslab
from compresslab import InvalidArgumentError, Measurement, Study, api, lab
from compresslab.errors import CompressLabError, UsageError
from compresslab.protocol import Protocol
from compresslab.records import SearchResult
from compresslab.report.compare import Comparison

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "study_format0"
FAST = Protocol(warmup_s=0.0, window_s=0.03, min_windows=2, max_windows=2)


def _three_forms(tmp_path: Path, **overrides: Any) -> list[Any]:
    """The same recipe as a mapping, as a path to its YAML, and as a Recipe."""
    spec = small(tmp_path, **overrides)
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return [spec, path, compresslab.load_recipe(path)]


# --- the façade ------------------------------------------------------------------------------


def test_the_package_lists_its_front_door() -> None:
    expected = {"load_recipe", "search", "open", "compare", "measure", "measure_block"}
    assert expected | {"rebuild_report", "export_trial", "energy_gate", "Study"} <= set(
        compresslab.__all__
    )
    assert set(compresslab.__all__) <= set(dir(compresslab))
    # The alias modules answer with the very same objects.
    for name in ("search", "open", "compare", "measure", "load_recipe", "Study"):
        assert getattr(lab, name) is getattr(compresslab, name), name
    assert api.compare is compresslab.compare and api.measure is compresslab.measure
    assert api.load_recipe is compresslab.load_recipe


@pytest.mark.slow
def test_compare_works_in_a_fresh_interpreter(tmp_path: Path) -> None:
    # `compresslab.compare` used to raise AttributeError until something imported it.
    db = tmp_path / "a.db"
    shutil.copy(FIXTURE / "study.db", db)
    probe = (
        "import sys, compresslab\n"
        "c = compresslab.compare(sys.argv[1], sys.argv[1])\n"
        "print(type(c).__name__, len(c.frame()) > 0)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(db)], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["Comparison", "True"]


def test_load_recipe_takes_the_three_forms(tmp_path: Path) -> None:
    spec, path, recipe = _three_forms(tmp_path)
    assert compresslab.load_recipe(spec) == compresslab.load_recipe(path) == recipe
    assert compresslab.load_recipe(recipe) is recipe
    assert compresslab.load_recipe(str(path)) == recipe
    with pytest.raises(TypeError, match="a path to its YAML, a mapping or a Recipe"):
        compresslab.load_recipe(42)  # type: ignore[arg-type]


# --- one error for one bad argument, from every entry point ------------------------------------


def test_a_bad_budget_is_the_same_error_everywhere(tmp_path: Path) -> None:
    spec = small(tmp_path)
    for search in (compresslab.search, lab.search, api.search):
        for bad in (0, -3, 100_001, True, 2.5):
            with pytest.raises(InvalidArgumentError) as e:
                search(spec, trials=bad)  # type: ignore[operator]
            assert e.value.argument == "trials" and isinstance(e.value, ValueError)
            assert str(e.value).startswith("trials must be an integer in [1, 100000]")
            assert e.value.exit_code == 2
    assert not (tmp_path / "reports").exists(), "nothing ran"


def test_a_bad_storage_is_the_same_error_everywhere(tmp_path: Path) -> None:
    spec = small(tmp_path)
    entry_points = [
        lambda s: compresslab.search(spec, storage=s),
        lambda s: api.search(spec, storage=s),
        lambda s: compresslab.open(spec, storage=s),
        lambda s: compresslab.rebuild_report(spec, storage=s),
        lambda s: api.rebuild_report(spec, storage=s),
        lambda s: compresslab.measure(spec, trial=1, storage=s),
    ]
    for call in entry_points:
        with pytest.raises(InvalidArgumentError) as e:
            call("sqlite://")
        assert e.value.argument == "storage"
        assert str(e.value).startswith("storage: 'sqlite://' is an SQLite database in memory")
        # The command line names its flag instead (cli.main rewords it so).
        assert e.value.reworded("--storage").startswith("--storage: 'sqlite://' is an SQLite")
    assert not (tmp_path / "reports").exists(), "nothing ran"


def test_a_recipe_of_the_wrong_type_is_a_type_error_everywhere(tmp_path: Path) -> None:
    for call in (compresslab.search, compresslab.open, compresslab.rebuild_report, api.search):
        with pytest.raises(TypeError, match="a path to its YAML, a mapping or a Recipe"):
            call(42)  # type: ignore[operator]
    with pytest.raises(TypeError, match="a torch model .* or a recipe"):
        compresslab.measure(42)  # type: ignore[arg-type]


def test_the_error_family() -> None:
    assert issubclass(InvalidArgumentError, CompressLabError)
    assert issubclass(InvalidArgumentError, ValueError)
    assert issubclass(UsageError, InvalidArgumentError)
    e = InvalidArgumentError("study_a names a study in a storage", argument="study_a")
    assert e.reworded("--study-a") == "--study-a names a study in a storage"
    assert UsageError("no study database at x").reworded("--x") == "no study database at x"


# --- one measure function, one return type ---------------------------------------------------


def test_measure_a_model_returns_a_measurement() -> None:
    net = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 2)).eval()
    m = compresslab.measure(net, torch.randn(8, 16), sampler="estimate", protocol=FAST)
    assert isinstance(m, Measurement) and m.evaluation is None
    assert m.energy.n_inferences >= 2 * 8 and m.energy_j_per_inference > 0
    out = m.to_json()
    assert out["energy_j_per_inference"] == m.energy_j_per_inference
    assert out["provenance"] == "estimated" and "estimate" in out["selection"]
    assert (out["variant"], out["trial"], out["recipe"]) == (None, None, None)
    json.dumps(out, default=str)  # every value can be written
    quiet = compresslab.measure(net, torch.randn(8, 16), sampler="estimate", protocol=FAST,
                                repeatability=False)  # fmt: skip
    assert quiet.energy.repeatability_source is None


def test_measure_refuses_arguments_that_do_not_apply(tmp_path: Path) -> None:
    net = nn.Linear(4, 2)
    for options, argument in (
        ({}, "inputs"),
        ({"inputs": torch.randn(2, 4), "trial": 1}, "trial"),
        ({"inputs": torch.randn(2, 4), "storage": "sqlite:///x.db"}, "storage"),
    ):
        with pytest.raises(InvalidArgumentError) as e:
            compresslab.measure(net, **options)
        assert e.value.argument == argument
    spec = small(tmp_path)
    for options, argument in (
        ({"inputs": torch.randn(2, 4)}, "inputs"),
        ({"sampler": "estimate"}, "sampler"),
        ({"protocol": FAST}, "protocol"),
        ({"repeatability": False}, "repeatability"),
    ):
        with pytest.raises(InvalidArgumentError, match="is for measuring a model") as e:
            compresslab.measure(spec, **options)  # type: ignore[arg-type]
        assert e.value.argument == argument


@pytest.mark.slow
def test_measure_a_recipe_returns_a_measurement(tmp_path: Path, digits_task: Any) -> None:
    spec, path, recipe = _three_forms(tmp_path, energy={**FAST_ENERGY})
    m = compresslab.measure(path)
    assert isinstance(m, Measurement) and m.evaluation is not None
    assert (m.recipe, m.variant, m.trial, m.metric_name) == ("small", "baseline", None, "accuracy")
    assert m.energy is m.evaluation.energy
    out = m.to_json()
    assert out["accuracy"] == m.evaluation.metric and out["variant"] == "baseline"
    assert list(out)[: len(m.energy.to_dict())] == list(m.energy.to_dict())
    assert compresslab.measure(spec).recipe == compresslab.measure(recipe).recipe == "small"


# --- a search or a study is a Study, whatever form its recipe took ---------------------------


@pytest.mark.slow
def test_search_open_and_report_return_a_study_for_each_form(
    tmp_path: Path, digits_task: Any
) -> None:
    forms = _three_forms(tmp_path, search={"trials": 2, "sampler": "random", "seed": 1})
    first = compresslab.search(forms[0], progress=False)
    assert isinstance(first, Study) and isinstance(first.result, SearchResult)
    assert len(first.result.trials) == 2
    for form in forms:
        again = compresslab.search(form, progress=False)  # resumed: nothing new to run
        opened = compresslab.open(form)
        rebuilt = compresslab.rebuild_report(form)
        for study in (again, opened, rebuilt):
            assert isinstance(study, Study)
            assert study.trials["trial"].tolist() == first.trials["trial"].tolist()
    plain = api.search(forms[1])  # the command line's: the plain result
    assert isinstance(plain, SearchResult) and len(plain.trials) == 2
    comparison = compresslab.compare(first, forms[1])
    assert isinstance(comparison, Comparison) and not comparison.only_a + comparison.only_b
    assert "baseline" in {r.variant for r in comparison.rows}
    with pytest.raises(InvalidArgumentError) as e:
        compresslab.compare(first, forms[1], study_b="small")
    assert e.value.argument == "study_b"


# --- a study written by an older release -----------------------------------------------------


def test_an_old_format_study_opens_and_compares(tmp_path: Path) -> None:
    folder = tmp_path / "reports" / "oldformat"
    folder.mkdir(parents=True)
    shutil.copy(FIXTURE / "study.db", folder / "study.db")
    shutil.copy(FIXTURE / "recipe.yaml", tmp_path / "recipe.yaml")
    study = compresslab.open(tmp_path / "recipe.yaml", base_dir=tmp_path)
    assert isinstance(study, Study)
    assert study.result.counts().startswith("2 variants measured, 2 screened out")
    assert study.frontier["trial"].tolist() == [1]
    assert "dynamic_int8" in repr(study)
    for other in (folder, folder / "study.db", study, tmp_path / "recipe.yaml"):
        kwargs = {"base_dir": tmp_path} if other == tmp_path / "recipe.yaml" else {}
        comparison = compresslab.compare(study, other, **kwargs)
        assert isinstance(comparison, Comparison)
        assert "dynamic_int8" in comparison.markdown()
        assert {r.variant for r in comparison.rows} >= {"dynamic_int8"}
