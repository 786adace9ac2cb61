"""``compresslab search`` and ``compresslab report``: a study's frontier, as a table or JSON."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from compresslab.cli._app import JsonOpt, RecipeArg, app, err, out, print_json
from compresslab.records import SearchInterrupted

if TYPE_CHECKING:
    from compresslab.records import SearchResult, TrialRecord


@app.command()
def search(
    recipe: RecipeArg,
    trials: Annotated[
        int | None,
        typer.Option(
            min=1, max=100_000, help="Distinct variants to reach (default: the recipe's)."
        ),
    ] = None,
    storage: Annotated[
        str | None, typer.Option(help="Optuna storage URL (default: SQLite in the report folder).")
    ] = None,
    fresh: Annotated[
        bool,
        typer.Option(
            "--fresh",
            help="Delete the recipe's study (every trial) and start over, e.g. after changing "
            "the task, compression, energy or runtime settings.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Search the recipe's compression space; write reports/<name>/ and print the frontier."""
    from compresslab.api import load_recipe
    from compresslab.api import search as run
    from compresslab.progress import search_progress

    rec = load_recipe(recipe)
    target = trials or rec.search.trials
    try:
        with (
            said_before_work(),
            search_progress(f"search {rec.name}", target, console=err) as on_trial,
        ):
            result = run(rec, trials=trials, storage=storage, on_trial=on_trial, fresh=fresh)
    except SearchInterrupted as stop:  # Ctrl-C: one line, how far it got and how to go on
        err.print(str(stop), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None
    report_md = rec.output_dir() / "report.md"
    if as_json:
        print_json(study_json(result, report_md))
        return
    print_frontier(result)
    out.print(f"{result.counts()}; report: {report_md}", markup=False, highlight=False)


#: The logger of the check before work (compresslab.study.before_work), named here so that
#: ``--help`` does not import it.
_BEFORE_WORK = "compresslab.study.before_work"


class _OneLine(logging.Handler):
    """Prints a record as ``info: ...`` or ``warning: ...`` on stderr (through ``err``)."""

    def emit(self, record: logging.LogRecord) -> None:
        kind = "[yellow]warning:[/]" if record.levelno >= logging.WARNING else "info:"
        err.print(f"{kind} {escape(record.getMessage())}", highlight=False, soft_wrap=True)


@contextlib.contextmanager
def said_before_work() -> Iterator[None]:
    """Show whether the tolerance can be resolved (its info line too, without --verbose)."""
    logger = logging.getLogger(_BEFORE_WORK)
    saved = logger.level, logger.propagate
    handler = _OneLine(logging.INFO)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # said once, by this handler
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


@app.command()
def report(
    recipe: RecipeArg,
    storage: Annotated[
        str | None, typer.Option(help="Optuna storage URL (default: the recipe's).")
    ] = None,
    confirm: Annotated[
        bool,
        typer.Option(
            "--confirm",
            help="Re-measure the frontier paired with the baseline first (runs the models).",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Rebuild reports/<name>/ from the study's storage (no model is run unless --confirm)."""
    from compresslab.api import load_recipe, rebuild_report

    rec = load_recipe(recipe)
    result = rebuild_report(rec, storage=storage, confirm=confirm)
    if as_json:
        print_json(study_json(result, rec.output_dir() / "report.md"))
        return
    print_frontier(result)
    out.print(f"{len(result.trials)} trials; report rebuilt from {result.storage}", markup=False)


def study_json(result: SearchResult, report_md: Path) -> dict[str, Any]:
    """What ``search --json`` and ``report --json`` print: the study, its counts, its frontier.

    Each frontier entry leads with the figures the table shows, then ``record``: the whole
    :class:`~compresslab.records.TrialRecord`.
    """
    return {
        "recipe": result.recipe_name,
        "study": result.study_name,
        "storage": result.storage,
        "report": report_md,
        "tolerance": result.tolerance,
        "baseline_accuracy": result.baseline_accuracy,
        "min_accuracy": result.min_accuracy,
        "counts": {
            "trials": len(result.trials),
            "measured": len(result.measured),
            "screened": len(result.screened),
            "predicted": len(result.predicted),
            "reused": len(result.reused),
            "failed": len(result.failed),
        },
        "frontier": [
            {
                "trial": r.number,
                "variant": r.variant,
                "accuracy": r.accuracy,
                "energy_j_per_inference": r.energy_j_per_inference,
                "ci95_j_per_inference": r.ci95_j_per_inference,
                "ratio_vs_baseline": 1.0 if r.is_baseline else r.ratio_vs_baseline,
                "provenance": r.provenance,
                "record": r,
            }
            for r in result.frontier
        ],
    }


def _ratio(record: TrialRecord) -> str:
    if record.is_baseline:
        return "1x"
    ratio = record.ratio_vs_baseline
    return f"{ratio:.2f}x" if ratio is not None and ratio == ratio else "-"  # not NaN


def print_frontier(result: SearchResult) -> None:
    """The frontier as a table: what ``search`` and ``report`` print."""
    from compresslab import units

    front = result.frontier
    factor, unit = units.energy_unit([r.energy_j_per_inference for r in front])
    table = Table(
        title=escape(f"Pareto frontier of {result.recipe_name} (within {result.tolerance})")
    )
    for col in (
        "trial",
        "variant",
        "accuracy",
        f"{unit} / inference (95% CI)",
        "Wh / million",
        "vs base (paired)",
        "provenance",
    ):
        table.add_column(col)
    for r in front:
        table.add_row(
            str(r.number),
            escape(r.variant),
            f"{r.accuracy:.4f}",
            f"{r.energy_j_per_inference * factor:.3g} ± {r.ci95_j_per_inference * factor:.2g}",
            f"{units.wh_per_million(r.energy_j_per_inference):.3g}",
            _ratio(r),
            r.provenance,
        )
    out.print(table)
