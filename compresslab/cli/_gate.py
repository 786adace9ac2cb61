"""The CI gate's three jobs, one command each: ``check``, ``baseline`` and ``requirements``.

``check --update`` and ``check --print-requirements``, the spellings before ``baseline`` and
``requirements`` existed, still work (hidden; a note on stderr names the new command), so
that workflows pasted from an older ``examples/ci`` keep running.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from compresslab.cli._app import JsonOpt, RecipeArg, app, err, out, print_json

if TYPE_CHECKING:
    from compresslab.check import Verdict
    from compresslab.study.resolvable import Resolvability

TrialOpt = Annotated[
    int | None, typer.Option(min=0, help="This trial's variant (default: the recipe's model).")
]
StorageOpt = Annotated[str | None, typer.Option(help="Study storage URL (with --trial).")]


@app.command()
def check(
    recipe: RecipeArg,
    baseline: Annotated[
        Path | None,
        typer.Option(
            help="Baseline JSON; the reference is the program beside it (`compresslab "
            "baseline` writes both)."
        ),
    ] = None,
    reference: Annotated[
        Path | None,
        typer.Option(help="Compare with this `compresslab export` folder instead (eager)."),
    ] = None,
    reference_rev: Annotated[
        str | None,
        typer.Option(
            "--reference-rev",
            help="Compare with the model as this git revision's code builds it instead.",
        ),
    ] = None,
    pairs: Annotated[
        int | None,
        typer.Option(min=2, help="Interleaved pairs of windows (default: check.pairs, 6)."),
    ] = None,
    trial: TrialOpt = None,
    storage: StorageOpt = None,
    as_json: JsonOpt = False,
    summary: Annotated[
        Path | None,
        typer.Option(help="Append a markdown summary here (default: $GITHUB_STEP_SUMMARY)."),
    ] = None,
    update: Annotated[
        bool, typer.Option("--update", hidden=True, help="Old spelling of `baseline`.")
    ] = False,
    print_requirements: Annotated[
        bool,
        typer.Option("--print-requirements", hidden=True, help="Old spelling of `requirements`."),
    ] = False,
) -> None:
    """Gate energy per inference against a reference measured in the same job.

    Give one reference: --baseline FILE, --reference DIR or --reference-rev REV. Exit 0 pass
    (or inconclusive with check.on_inconclusive: pass), 1 regression (or inconclusive with
    on_inconclusive: fail), 2 bad input.
    """
    if print_requirements or update:
        _old_spelling(recipe, baseline, reference, reference_rev, trial, storage, update, as_json)
        return
    from compresslab.api import energy_gate
    from compresslab.check import GateRequest

    request = GateRequest(
        recipe=recipe,
        baseline=baseline,
        reference_dir=reference,
        reference_rev=reference_rev,
        trial=trial,
        storage=storage,
        pairs=pairs,
    )
    resolvable = _resolvable(recipe, baseline, storage)  # before any work (exit 2 if asked)
    verdict = energy_gate(request)
    target = summary or (Path(p) if (p := os.environ.get("GITHUB_STEP_SUMMARY")) else None)
    if target is not None:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(verdict.markdown())
    if as_json:
        print_json({**verdict.to_dict(), "resolvability": resolvable.to_dict()})
    else:
        _print_verdict(verdict)
    raise typer.Exit(verdict.exit_code)


def _resolvable(recipe: Path, baseline: Path | None, storage: str | None) -> Resolvability:
    """Whether the recipe's tolerance can be resolved with its pool, said on stderr.

    The baseline's accuracy comes from the baseline file (when it has the recipe's metric),
    else from the recipe's study, else it is assumed (the message says which).
    """
    from compresslab.api import load_recipe
    from compresslab.check import read_baseline
    from compresslab.cli._study import said_before_work
    from compresslab.errors import CompressLabError
    from compresslab.study.before_work import resolvability_before_work

    rec = load_recipe(recipe)
    accuracy = None
    if baseline is not None:
        with contextlib.suppress(CompressLabError):  # the gate says what is wrong with it
            snap = read_baseline(baseline)
            accuracy = snap.accuracy if snap.metric == rec.task.metric else None
    with said_before_work():
        return resolvability_before_work(rec, baseline_accuracy=accuracy, storage=storage)


def _old_spelling(
    recipe: Path,
    baseline: Path | None,
    reference: Path | None,
    reference_rev: str | None,
    trial: int | None,
    storage: str | None,
    update: bool,
    as_json: bool,
) -> None:
    """``check --print-requirements`` and ``check --update``: what they always did, and a note."""
    if not update:
        err.print("note: `check --print-requirements` is now `compresslab requirements RECIPE`")
        requirements(recipe, as_json=as_json)
        return
    if baseline is None or reference is not None or reference_rev is not None:
        raise typer.BadParameter(
            "--update writes a baseline: give --baseline FILE, and only it (or use "
            "`compresslab baseline RECIPE --out FILE`)",
            param_hint="--update",
        )
    err.print(
        f"note: `check --update` is now `compresslab baseline RECIPE --out {baseline} --force`"
    )
    _write_baseline(recipe, baseline, trial=trial, storage=storage, replace=True, as_json=as_json)


def _print_verdict(verdict: Verdict) -> None:
    style = {"pass": "green", "regression": "bold red", "inconclusive": "yellow"}
    out.print(
        f"energy gate [{style[verdict.outcome]}]{verdict.outcome.upper()}[/] "
        f"(exit {verdict.exit_code}) against {escape(verdict.reference)}; measured as "
        f"{escape(verdict.measured_as)}"
    )
    for reason in verdict.reasons:
        out.print(f"  - {escape(reason)}")
    for warning in verdict.warnings:
        err.print(f"  [yellow]warning:[/] {escape(warning)}")


@app.command()
def baseline(
    recipe: RecipeArg,
    out_file: Annotated[
        Path,
        typer.Option(
            "--out", help="Baseline JSON to write; its program goes beside it (<stem>.pt2)."
        ),
    ],
    trial: TrialOpt = None,
    storage: StorageOpt = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing baseline and its program.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Write the gate's baseline: the model's figures as JSON and its program beside it.

    Commit both; `compresslab check RECIPE --baseline FILE` then gates against the program.
    """
    _write_baseline(recipe, out_file, trial=trial, storage=storage, replace=force, as_json=as_json)


def _write_baseline(
    recipe: Path,
    path: Path,
    *,
    trial: int | None,
    storage: str | None,
    replace: bool,
    as_json: bool,
) -> None:
    from compresslab.api import update_baseline
    from compresslab.check import BaselineRequest

    request = BaselineRequest(
        recipe=recipe, baseline=path, trial=trial, storage=storage, replace=replace
    )
    snap = update_baseline(request)
    ref = snap.reference or {}
    program = path.parent / str(ref.get("file"))
    if as_json:
        print_json({"baseline": path, "program": program, "snapshot": snap.to_dict()})
        return
    out.print(
        f"wrote baseline {path} and its reference program {program} ({ref.get('kind')}); "
        f"commit both. Recorded: {snap.energy_j_per_inference:.4g} J per inference "
        f"({snap.provenance}), modeled {snap.modeled_j_per_inference:.4g} J, {snap.metric} "
        f"{snap.accuracy:.4f}",
        markup=False,
        highlight=False,
    )


@app.command()
def requirements(recipe: RecipeArg, as_json: JsonOpt = False) -> None:
    """Print the pip requirements of the extras the recipe needs, one a line (none: nothing).

    Nothing is built or measured, and torch is not imported: run it before the extras are
    installed, e.g. `pip install -r <(compresslab requirements RECIPE)`.
    """
    from compresslab.check import extra_requirements, recipe_extras

    if not recipe.is_file():
        raise typer.BadParameter(f"no recipe file at {recipe}", param_hint="RECIPE")
    extras = recipe_extras(recipe)
    lines = extra_requirements(extras)
    if as_json:
        print_json({"recipe": recipe, "extras": extras, "requirements": lines})
        return
    for line in lines:
        print(line)
