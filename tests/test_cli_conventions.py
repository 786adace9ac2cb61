"""The command line's conventions, held for every command: ``--json``, ``--force``, switches.

The API functions the commands call are replaced by fakes returning typed records, so each
command runs in this process in a fraction of a second; what the real functions do is tested
beside them (tests/test_check.py, tests/test_export.py, tests/test_compare.py ...).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
import typer.main
import yaml
from tests_support import _energy, sample_result, small

from compresslab.check import (
    BaselineRequest,
    EnergyCheck,
    GateInputError,
    GateRequest,
    Measurement,
    Snapshot,
    Verdict,
)
from compresslab.check.verdict import modeled_check
from compresslab.cli import app, main
from compresslab.export import ExportRequest
from compresslab.records import Evaluation, PairedRatio
from compresslab.records import Measurement as Measured

ROOT = Path(__file__).resolve().parent.parent


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``compresslab ARGS`` in this process, through :func:`main`: exit code, stdout, stderr."""
    argv = sys.argv
    sys.argv = ["compresslab", *args]
    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = argv
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _commands() -> dict[str, click.Command]:
    group = typer.main.get_command(app)
    return dict(group.commands)  # type: ignore[attr-defined]


@pytest.fixture
def recipe_file(tmp_path: Path) -> Path:
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(small(tmp_path)))
    return path


def _verdict() -> Verdict:
    m = Measurement(1.01, 0.97, 1.04, 6, "pass", 1.01e-3, 1e-3)
    energy = EnergyCheck(outcome="pass", limit=1.05, level=0.95, measurements=[m])
    return Verdict(
        recipe="small",
        outcome="pass",
        on_inconclusive="pass",
        reference="ref",
        measured_as="programs",
        energy=energy,
        modeled=modeled_check(1.0, 1.0, max_increase=0.0),
    )


def _snapshot() -> Snapshot:
    return Snapshot(
        recipe="small",
        recipe_hash="x",
        variant="baseline",
        metric="accuracy",
        accuracy=0.95,
        sampler="estimate",
        provenance="estimated",
        energy_j_per_inference=1e-3,
        ci95_j_per_inference=1e-5,
        window_j_per_inference=[1e-3, 1e-3],
        modeled_j_per_inference=1e-6,
        batch_size=32,
        machine={"host": "h"},
        reference={"file": "b.pt2", "kind": "export"},
    )


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, list[Any]]:
    """The API's functions replaced by fakes that record what they were given."""
    import compresslab.api as api
    from compresslab.report.compare import compare_results

    calls: dict[str, list[Any]] = {}

    def fake(name: str, value: Any) -> Any:
        def record(*args: Any, **kwargs: Any) -> Any:
            calls.setdefault(name, []).append((args, kwargs))
            return value(*args, **kwargs) if callable(value) else value

        return record

    def export(request: ExportRequest) -> Path:
        request.out_dir.mkdir(parents=True, exist_ok=True)
        (request.out_dir / "variant.json").write_text("{}")
        return request.out_dir

    measured = Measured(
        energy=_energy(1e-3, 1e-5),
        recipe="small",
        variant="baseline",
        trial=None,
        metric_name="accuracy",
        evaluation=Evaluation(
            metric=0.95,
            metric_ci95=(0.9, 0.97),
            energy=_energy(1e-3, 1e-5),
            vs_baseline=PairedRatio.itself(),
        ),
        selection="estimate: used",
    )
    monkeypatch.setattr(api, "search", fake("search", sample_result()))
    monkeypatch.setattr(api, "rebuild_report", fake("rebuild_report", sample_result()))
    monkeypatch.setattr(api, "measure", fake("measure", measured))
    monkeypatch.setattr(api, "energy_gate", fake("energy_gate", _verdict()))
    # `check` says first whether the tolerance can be resolved (it loads the task): faked too.
    import compresslab.study.before_work as before_work
    from compresslab.recipe.schema_search import AccuracyEvaluation, Tolerance
    from compresslab.study.resolvable import resolvability

    figures = resolvability(
        pool=360,
        tolerance=Tolerance(absolute=0.01),
        evaluation=AccuracyEvaluation(),
        baseline_accuracy=0.95,
    )
    monkeypatch.setattr(
        before_work, "resolvability_before_work", fake("resolvability_before_work", figures)
    )
    monkeypatch.setattr(api, "update_baseline", fake("update_baseline", _snapshot()))
    monkeypatch.setattr(api, "export_trial", fake("export_trial", export))
    both = compare_results(sample_result(), sample_result())
    monkeypatch.setattr(api, "compare", fake("compare", both))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))
    return calls


def _json_runs(recipe: Path, tmp_path: Path) -> dict[str, list[str]]:
    r = str(recipe)
    return {
        "search": ["search", r, "--json"],
        "report": ["report", r, "--json"],
        "measure": ["measure", r, "--json"],
        "check": ["check", r, "--baseline", str(tmp_path / "b.json"), "--json"],
        "baseline": ["baseline", r, "--out", str(tmp_path / "new.json"), "--json"],
        "requirements": ["requirements", r, "--json"],
        "export": ["export", r, "--trial", "1", "--out", str(tmp_path / "art"), "--json"],
        "compare": ["compare", "a", "b", "--json"],
        "samplers": ["samplers", "--json"],
    }


@pytest.mark.slow
def test_every_command_prints_one_json_object_with_json(
    fakes: dict[str, list[Any]],
    recipe_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    runs = _json_runs(recipe_file, tmp_path)
    assert set(runs) == set(_commands()), "a command without a --json run here"
    objects = {}
    for name, args in runs.items():
        code, out, err = run_main(args, capsys)
        assert code == 0, (name, err)
        objects[name] = json.loads(out)
        assert isinstance(objects[name], dict), name
    for name in ("search", "report"):
        study = objects[name]
        assert study["counts"] == {
            "trials": 4,
            "measured": 3,
            "screened": 0,
            "predicted": 0,
            "reused": 0,
            "failed": 1,
        }
        assert [f["trial"] for f in study["frontier"]] == [1, 0]  # cheapest first
        first = study["frontier"][0]
        assert first["energy_j_per_inference"] == pytest.approx(4e-4)
        assert first["record"]["evaluation"]["energy"]["provenance"] == "estimated"
        assert study["report"].endswith("report.md")
    assert objects["measure"]["energy_j_per_inference"] == pytest.approx(1e-3)
    assert objects["check"]["outcome"] == "pass" and objects["check"]["exit_code"] == 0
    assert objects["check"]["resolvability"]["pool"] == 360
    assert objects["baseline"]["snapshot"]["recipe"] == "small"
    assert objects["baseline"]["program"] == str(tmp_path / "b.pt2")
    assert objects["requirements"] == {"recipe": str(recipe_file), "extras": [], "requirements": []}
    assert objects["export"]["files"] == ["variant.json"]
    assert objects["export"]["folder"] == str(tmp_path / "art")
    assert {r["variant"] for r in objects["compare"]["rows"]} >= {"baseline"}
    assert objects["compare"]["a"]["study"] == "unit"
    assert {s["name"] for s in objects["samplers"]["samplers"]} >= {"estimate", "model"}


def test_no_help_shows_a_value_for_a_switch(capsys: pytest.CaptureFixture[str]) -> None:
    for name in ["", *_commands()]:
        code, out, _ = run_main([name, "--help"] if name else ["--help"], capsys)
        assert code == 0 and "Usage: " in out, name
        assert "<bool>" not in out and "BOOLEAN" not in out, f"compresslab {name} --help:\n{out}"
        if name == "search":
            assert "--fresh " in out and "--trials <int range>" in out


def test_force_means_replace_what_exists_in_every_command() -> None:
    with_force = {}
    for name, command in _commands().items():
        for param in command.params:
            if "--force" in getattr(param, "opts", ()):
                with_force[name] = getattr(param, "help", "") or ""
    assert set(with_force) == {"baseline", "export", "compare"}
    assert all(text.startswith("Replace ") for text in with_force.values()), with_force


def test_export_and_baseline_pass_force_on_as_replace(
    fakes: dict[str, list[Any]],
    recipe_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    art = str(tmp_path / "art")
    args = ["export", str(recipe_file), "--trial", "2", "--out", art]
    assert run_main([*args, "--force"], capsys)[0] == 0
    assert run_main([*args, "--allow-unmeasured"], capsys)[0] == 0
    first, second = (call[0][0] for call in fakes["export_trial"])
    assert (first.replace, first.allow_unmeasured) == (True, False)
    assert (second.replace, second.allow_unmeasured) == (False, True)
    assert first.trial == 2 and first.out_dir == tmp_path / "art"

    out = str(tmp_path / "b.json")
    assert run_main(["baseline", str(recipe_file), "--out", out, "--force"], capsys)[0] == 0
    [((request,), _)] = fakes["update_baseline"]
    assert isinstance(request, BaselineRequest) and request.replace
    assert request.baseline == tmp_path / "b.json"


def test_baseline_refuses_to_replace_without_force(
    recipe_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    existing = tmp_path / "b.json"
    existing.write_text("{}")
    code, _, err = run_main(["baseline", str(recipe_file), "--out", str(existing)], capsys)
    assert code == 2 and "pass --force" in err and "b.json exists" in err
    assert existing.read_text() == "{}"


def test_compare_refuses_to_replace_a_comparison_without_force(
    fakes: dict[str, list[Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "cmp"
    folder.mkdir()
    (folder / "compare.md").write_text("mine")
    code, _, err = run_main(["compare", "a", "b", "--out", str(folder)], capsys)
    assert code == 2 and "--force" in err and "compare" not in fakes
    assert (folder / "compare.md").read_text() == "mine"
    code, _, err = run_main(["compare", "a", "b", "--out", str(folder), "--force"], capsys)
    assert code == 0, err
    assert (folder / "compare.md").read_text() != "mine"
    run_main(["compare", "a", "b", "--mixed-provenance", "--json"], capsys)
    assert [kw["force"] for _, kw in fakes["compare"]] == [False, True]


def test_compare_reads_a_recipe_as_its_study(
    fakes: dict[str, list[Any]], recipe_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_main(["compare", str(recipe_file), "b.db", "--json"], capsys)
    assert code == 0, err
    [((a, b), kw)] = fakes["compare"]
    assert a == str(recipe_file.parent / "reports" / "small" / "study.db")
    assert b == "b.db" and kw["study_a"] == "small" and kw["study_b"] is None


def test_check_passes_one_gate_request_through(
    fakes: dict[str, list[Any]],
    recipe_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["check", str(recipe_file), "--reference-rev", "HEAD~1", "--pairs", "8", "--trial", "3"]
    code, out, _ = run_main(args, capsys)
    assert code == 0 and "energy gate PASS" in out
    [((request,), kwargs)] = fakes["energy_gate"]
    assert kwargs == {} and isinstance(request, GateRequest)
    assert (request.reference_rev, request.pairs, request.trial) == ("HEAD~1", 8, 3)
    assert request.baseline is None and request.recipe_path == recipe_file
    assert "compresslab energy gate: PASS" in (tmp_path / "summary.md").read_text()


def test_the_old_spellings_of_check_still_work(
    fakes: dict[str, list[Any]],
    recipe_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out_file = str(tmp_path / "b.json")
    code, out, err = run_main(
        ["check", str(recipe_file), "--baseline", out_file, "--update"], capsys
    )
    assert code == 0 and "wrote baseline" in out and "compresslab baseline" in err
    [((request,), _)] = fakes["update_baseline"]
    assert request.replace  # --update always replaced the baseline
    code, out, err = run_main(["check", str(recipe_file), "--print-requirements"], capsys)
    assert code == 0 and out == "" and "compresslab requirements" in err
    code, _, err = run_main(["check", str(recipe_file), "--update"], capsys)
    assert code == 2 and "--baseline FILE" in err
    helps = run_main(["check", "--help"], capsys)[1]
    assert "--update" not in helps and "--print-requirements" not in helps


# --- the requests, without the command line ----------------------------------------------------


def test_a_gate_request_holds_exactly_one_reference(tmp_path: Path) -> None:
    with pytest.raises(GateInputError, match="give the gate one reference") as e:
        GateRequest(recipe="r.yaml")
    assert e.value.exit_code == 2
    with pytest.raises(GateInputError, match="got 2"):
        GateRequest(recipe="r.yaml", baseline="b.json", reference_rev="HEAD")
    with pytest.raises(GateInputError, match="at least 2"):
        GateRequest(recipe="r.yaml", reference_rev="HEAD", pairs=1)
    request = GateRequest(recipe="r.yaml", baseline="b.json")  # text becomes paths
    assert request.baseline == Path("b.json") and request.recipe_path == Path("r.yaml")
    with pytest.raises(TypeError, match="unloaded recipe"):
        _ = request.loaded_recipe


def test_energy_gate_loads_the_recipe_into_the_request_for_the_gate(
    monkeypatch: pytest.MonkeyPatch, recipe_file: Path, tmp_path: Path
) -> None:
    import compresslab.check as check
    from compresslab.api import energy_gate, update_baseline
    from compresslab.recipe import Recipe

    seen: list[Any] = []
    monkeypatch.setattr(check, "run_check", lambda request: seen.append(request) or _verdict())
    verdict = energy_gate(GateRequest(recipe=recipe_file, reference_dir=tmp_path, trial=1))
    assert verdict.outcome == "pass"
    [request] = seen
    assert isinstance(request.recipe, Recipe) and request.loaded_recipe.name == "small"
    assert request.recipe_path == recipe_file and request.reference_dir == tmp_path
    assert request.trial == 1 and request.n_pairs == request.loaded_recipe.check.pairs

    monkeypatch.setattr(check, "update_baseline", lambda request: seen.append(request))
    update_baseline(BaselineRequest(recipe=recipe_file, baseline=tmp_path / "b.json"))
    assert isinstance(seen[-1].recipe, Recipe) and not seen[-1].replace


def test_update_baseline_refuses_an_existing_file_before_building(
    recipe_file: Path, tmp_path: Path
) -> None:
    from compresslab.api import update_baseline

    existing = tmp_path / "b.json"
    existing.write_text("{}")
    with pytest.raises(GateInputError, match="replace=True"):
        update_baseline(BaselineRequest(recipe=recipe_file, baseline=existing))


@pytest.mark.slow
def test_requirements_and_the_check_package_import_no_torch(recipe_file: Path) -> None:
    probe = (
        "import sys; import compresslab.check; from compresslab.cli import main; "
        f"sys.argv = ['compresslab', 'requirements', {str(recipe_file)!r}]\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code\n"
        "print([m for m in ('torch', 'pandas', 'optuna') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"
