"""``compresslab compare``: two studies side by side, named like every other command's study."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from compresslab.cli._app import JsonOpt, app, err, out, print_json
from compresslab.errors import UsageError
from compresslab.records import to_json

if TYPE_CHECKING:
    from compresslab.records import SearchResult
    from compresslab.report.compare import Comparison

#: The files ``--out`` writes.
_WRITTEN = ("compare.md", "compare.csv", "compare.png")
_RECIPE_SUFFIXES = (".yaml", ".yml")


@app.command()
def compare(
    study_a: Annotated[
        str,
        typer.Argument(
            metavar="A", help="A recipe (its study), report folder (with study.db), .db or URL."
        ),
    ],
    study_b: Annotated[str, typer.Argument(metavar="B", help="The second study, likewise.")],
    name_a: Annotated[
        str | None, typer.Option("--study-a", help="Study name in A if it holds several.")
    ] = None,
    name_b: Annotated[
        str | None, typer.Option("--study-b", help="Study name in B if it holds several.")
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Write compare.md, compare.csv and compare.png here."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace a comparison already in the --out folder.")
    ] = False,
    mixed_provenance: Annotated[
        bool,
        typer.Option(
            "--mixed-provenance",
            help="Divide absolute figures of different provenance anyway (said so).",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Two studies side by side: variants in both, with their energies, accuracies and ratios."""
    from compresslab.api import compare as run_compare

    if out_dir is not None and not force:
        _refuse_existing(out_dir)
    location_a, name_a = _location(study_a, name_a)
    location_b, name_b = _location(study_b, name_b)
    comparison = run_compare(
        location_a, location_b, study_a=name_a, study_b=name_b, force=mixed_provenance
    )
    written: dict[str, Path] = {}
    if out_dir is not None:
        from compresslab.report.compare import write_comparison

        written = write_comparison(comparison, out_dir)
    if as_json:
        print_json(_comparison_json(comparison, written))
        return
    _print_comparison(comparison)


def _location(arg: str, name: str | None) -> tuple[str, str | None]:
    """Where a study is and its name: a recipe names its own; anything else is passed on."""
    path = Path(arg)
    if path.suffix.lower() not in _RECIPE_SUFFIXES:
        return arg, name
    from compresslab.api import load_recipe
    from compresslab.study import storage_of

    recipe = load_recipe(path)
    url = storage_of(recipe)
    # An SQLite study is read as its file (a .db path), as a report folder's is.
    return url.removeprefix("sqlite:///"), name or recipe.study_name


def _refuse_existing(out_dir: Path) -> None:
    there = [name for name in _WRITTEN if (out_dir / name).exists()]
    if there:
        raise UsageError(
            f"{out_dir} already holds a comparison ({', '.join(there)}): pass --force to "
            "replace it, or choose another --out folder"
        )


def _side(result: SearchResult) -> dict[str, Any]:
    return {"recipe": result.recipe_name, "study": result.study_name, "storage": result.storage}


def _comparison_json(comparison: Comparison, written: dict[str, Path]) -> dict[str, Any]:
    """What ``compare --json`` prints: both studies, the matched rows, what is in one only."""
    return {
        "a": _side(comparison.a),
        "b": _side(comparison.b),
        "rows": to_json(comparison.rows),
        "only_a": comparison.only_a,
        "only_b": comparison.only_b,
        "warnings": comparison.warnings,
        "written": written,
    }


def _num(value: object, spec: str, suffix: str = "") -> str:
    return f"{value:{spec}}{suffix}" if isinstance(value, float) and value == value else "-"


def _print_comparison(comparison: Comparison) -> None:
    table = Table(title=escape(f"{comparison.a.study_name} (A) vs {comparison.b.study_name} (B)"))
    for col in ("variant", "acc A", "acc B", "J/inf A", "J/inf B", "B/A", "vs base A", "vs base B"):
        table.add_column(col)
    for r in comparison.rows:
        table.add_row(
            escape(str(r.variant)),
            _num(r.accuracy_a, ".4f"),
            _num(r.accuracy_b, ".4f"),
            _num(r.energy_j_per_inference_a, ".3g") + f" ({r.provenance_a})",
            _num(r.energy_j_per_inference_b, ".3g") + f" ({r.provenance_b})",
            _num(r.energy_b_over_a, ".2f", "x"),
            _num(r.ratio_vs_baseline_a, ".2f", "x"),
            _num(r.ratio_vs_baseline_b, ".2f", "x"),
        )
    out.print(table)
    for warning in comparison.warnings:
        err.print(f"warning: {warning}", markup=False, highlight=False)
    if comparison.only_a or comparison.only_b:
        out.print(
            f"{len(comparison.only_a)} variants only in A, {len(comparison.only_b)} only in B",
            markup=False,
        )
