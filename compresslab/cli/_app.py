"""The command line: parses arguments, calls the API, prints. Nothing else lives here."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from compresslab._version import __version__
from compresslab.errors import CompressLabError, RecipeError
from compresslab.records import SearchInterrupted

if TYPE_CHECKING:
    from compresslab.records import (
        EnergyResult,
        Measurement,
        PairedRatio,
        SearchResult,
        TrialRecord,
    )

# Heavy libraries (torch, pandas, optuna) are imported inside the commands that use them, so
# `--version`, `--help` and a bad command line answer at once.

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="compresslab: trade model accuracy against measured energy per inference.",
)
# Wide enough for the frontier table when output goes to a file or a CI log.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        out.print(f"compresslab {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Log progress details, libraries' warnings, and the traceback of an error.",
        ),
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    global _verbose
    _verbose = verbose
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    # Libraries (optuna) set their own logger levels; the handler decides what is shown.
    for handler in logging.getLogger().handlers:
        handler.setLevel(level)
    if not verbose:
        _quiet_known_noise()


#: Set by ``--verbose``: errors then show their traceback too.
_verbose = False

#: Libraries' messages that do not apply to how compresslab uses them, by logger: shown only
#: with --verbose. Each names what it is about.
_KNOWN_NOISE: dict[str, tuple[str, ...]] = {
    # torchao's CUDA-only kernels (mxfp8, cutlass) and triton: compresslab runs its CPU paths.
    "torchao": ("Failed to load",),
    "torchao.kernel.intmm": ("Detected no triton",),
    # torch deprecating a registration torchao performs at import.
    "torch.utils._pytree": ("is an Enum subclass",),
    # bitsandbytes: an optional accelerated 4-bit CPU kernel package. (LLM.int8's per-call
    # fp16-cast line is dropped wherever bitsandbytes is used: compress.bnb.INT8_CAST_LOG.)
    "bitsandbytes.backends.cpu.ops": ("kernels-community",),
}


class _DropKnownNoise(logging.Filter):
    def __init__(self, fragments: tuple[str, ...]) -> None:
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(f in message for f in self.fragments)


def _quiet_known_noise() -> None:
    """Hide libraries' warnings that do not apply here (``--verbose`` shows them)."""
    import warnings

    for name, fragments in _KNOWN_NOISE.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropKnownNoise) for f in logger.filters):
            logger.addFilter(_DropKnownNoise(fragments))
    # Deprecations inside torch and torchao (torch.ao.quantization, quantized tensors) are
    # theirs to fix; the methods that use these APIs are probed before every search.
    for module in (r"torch(\..*)?", r"torchao(\..*)?", r"bitsandbytes(\..*)?"):
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=module)
        warnings.filterwarnings("ignore", category=FutureWarning, module=module)


RecipeArg = Annotated[Path, typer.Argument(help="Recipe YAML, e.g. recipes/digits.yaml.")]


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
) -> None:
    """Search the recipe's compression space; write reports/<name>/ and print the frontier."""
    from compresslab.api import load_recipe
    from compresslab.api import search as run
    from compresslab.progress import search_progress

    rec = load_recipe(recipe)
    target = trials or rec.search.trials
    try:
        with search_progress(f"search {rec.name}", target, console=err) as on_trial:
            result = run(rec, trials=trials, storage=storage, on_trial=on_trial, fresh=fresh)
    except SearchInterrupted as stop:  # Ctrl-C: one line, how far it got and how to go on
        err.print(str(stop), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None
    _print_frontier(result)
    out.print(
        f"{result.counts()}; report: {rec.output_dir() / 'report.md'}",
        markup=False,
        highlight=False,
    )


def _ratio(record: TrialRecord) -> str:
    if record.is_baseline:
        return "1x"
    ratio = record.ratio_vs_baseline
    return f"{ratio:.2f}x" if ratio is not None and ratio == ratio else "-"  # not NaN


def _print_frontier(result: SearchResult) -> None:
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
) -> None:
    """Rebuild reports/<name>/ from the study's storage (no model is run unless --confirm)."""
    from compresslab.api import rebuild_report

    result = rebuild_report(recipe, storage=storage, confirm=confirm)
    _print_frontier(result)
    out.print(f"{len(result.trials)} trials; report rebuilt from {result.storage}", markup=False)


@app.command()
def measure(
    recipe: RecipeArg,
    trial: Annotated[
        int | None, typer.Option(min=0, help="Measure this trial's variant (default: baseline).")
    ] = None,
    storage: Annotated[
        str | None, typer.Option(help="Optuna storage URL of the study (with --trial).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Measure the recipe's baseline model (or one trial's variant) and print its energy."""
    from compresslab.api import measure_recipe

    result = measure_recipe(recipe, trial=trial, storage=storage)
    if as_json:
        print(json.dumps(result.to_json(), indent=2, default=str))
        return
    out.print(_measurement_table(result))


def _measurement_table(result: Measurement) -> Table:
    """The rows ``compresslab measure`` prints for one measurement."""
    from compresslab import units

    ev = result.evaluation
    e = ev.energy
    factor, unit = units.energy_unit([e.energy_j_per_inference])
    table = Table(title=escape(f"{result.recipe}: {result.variant}"), show_header=False)
    table.add_column("figure")
    table.add_column("value")
    rows = [
        (
            "energy / inference",
            f"{e.energy_j_per_inference * factor:.4g} "
            f"± {e.ci95_j_per_inference * factor:.2g} {unit} (95% CI, {e.windows} windows"
            + ("" if e.ci_target_met else "; CI target missed")
            + ")",
        ),
        ("interval", _interval_text(e, factor, unit)),
        ("Wh / million inferences", f"{units.wh_per_million(e.energy_j_per_inference):.4g}"),
        ("provenance", f"{e.provenance} ({e.sampler})"),
        (
            "gross / idle",
            f"{units.format_energy(e.gross_j_per_inference)} / {e.idle_power_w:.3g} W",
        ),
        ("modeled", f"{units.format_energy(ev.modeled_j_per_inference)} (modeled)"),
        ("inferences measured", f"{e.n_inferences} in batches of {e.batch_size}"),
        (
            "latency / batch",
            f"{e.latency_s_per_batch * 1e3:.3g} ms mean, "
            f"p50 {e.latency_p50_s_per_batch * 1e3:.3g}, "
            f"p95 {e.latency_p95_s_per_batch * 1e3:.3g} ms",
        ),
        (
            "contention",
            f"others kept {e.contention.foreign_cpus_mean or 0:.2f} CPUs busy"
            + (" (contended)" if e.contended else ""),
        ),
        ("sampler selection", result.selection),
    ]
    vs = ev.vs_baseline
    if vs is not None and vs.pairs:
        rows[1:1] = [
            (
                "vs baseline (paired)",
                f"{vs.ratio:.3f} [{vs.ci95_low:.3f}, {vs.ci95_high:.3f}], {vs.pairs} pairs",
            ),
            ("ratio interval", _ratio_interval_text(vs)),
        ]
    for name, value in rows:
        table.add_row(name, escape(str(value)))
    return table


def _interval_text(result: EnergyResult, factor: float, unit: str) -> str:
    """How a standalone figure's 95% interval was made: windows, repeatability, source."""
    windows = result.ci95_windows_j_per_inference
    rel = result.repeatability_rel
    source = result.repeatability_source or "not considered"
    if rel is None:
        return f"± {windows * factor:.2g} {unit} from the windows; repeatability {source}"
    return (
        f"± {windows * factor:.2g} {unit} from the windows and ± {100 * rel:.1f}% between "
        f"measurements, in quadrature ({source})"
    )


def _ratio_interval_text(vs: PairedRatio) -> str:
    """How a paired ratio's 95% interval was made: pairs, repeatability between spans, source."""
    low = vs.ci95_low_pairs if vs.ci95_low_pairs is not None else vs.ci95_low
    high = vs.ci95_high_pairs if vs.ci95_high_pairs is not None else vs.ci95_high
    rel = vs.ratio_repeatability_rel
    source = vs.ratio_repeatability_source or "not considered"
    if rel is None:
        return f"[{low:.3f}, {high:.3f}] from the pairs; repeatability of ratios {source}"
    return (
        f"[{low:.3f}, {high:.3f}] from the pairs and ± {100 * rel:.1f}% (log scale) between "
        f"spans, in quadrature ({source})"
    )


@app.command()
def check(
    recipe: RecipeArg,
    baseline: Annotated[
        Path | None,
        typer.Option(
            help="Baseline JSON; the reference is the program beside it (written by --update)."
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
    update: Annotated[
        bool, typer.Option("--update", help="Write the baseline and its program; no gating.")
    ] = False,
    pairs: Annotated[
        int | None,
        typer.Option(min=2, help="Interleaved pairs of windows (default: check.pairs, 6)."),
    ] = None,
    trial: Annotated[
        int | None, typer.Option(min=0, help="Gate this trial's variant (default: baseline).")
    ] = None,
    storage: Annotated[str | None, typer.Option(help="Study storage URL (with --trial).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    summary: Annotated[
        Path | None,
        typer.Option(help="Append a markdown summary here (default: $GITHUB_STEP_SUMMARY)."),
    ] = None,
    print_requirements: Annotated[
        bool,
        typer.Option(
            "--print-requirements",
            help="Print the pip requirements of the extras the recipe needs (one a line; "
            "nothing when none) and exit; nothing is built or measured.",
        ),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", hidden=True, help="No effect (kept for old scripts).")
    ] = False,
) -> None:
    """Gate energy per inference against a reference measured in the same job.

    Exit 0 pass (or inconclusive with check.on_inconclusive: pass), 1 regression (or
    inconclusive with on_inconclusive: fail), 2 bad input.
    """
    import os

    if print_requirements:
        from compresslab.check.extras import extra_requirements, recipe_extras

        if not recipe.is_file():
            raise typer.BadParameter(f"no recipe file at {recipe}", param_hint="RECIPE")
        for line in extra_requirements(recipe_extras(recipe)):
            print(line)
        return

    from compresslab.api import energy_gate

    if force:
        err.print(
            "[yellow]warning:[/] --force has no effect: the gate measures its reference in "
            "the same job, on this machine"
        )
    result = energy_gate(
        recipe,
        baseline=baseline,
        reference=reference,
        reference_rev=reference_rev,
        update=update,
        trial=trial,
        storage=storage,
        pairs=pairs,
    )
    if update:
        snap = result
        ref = snap.reference or {}
        if as_json:
            print(json.dumps({"updated": str(baseline), "baseline": snap.to_dict()}, default=str))
        else:
            out.print(
                f"wrote baseline {baseline} and its reference program {ref.get('file')} "
                f"({ref.get('kind')}); commit both. Recorded: {snap.energy_j_per_inference:.4g} J "
                f"per inference ({snap.provenance}), modeled {snap.modeled_j_per_inference:.4g} "
                f"J, {snap.metric} {snap.accuracy:.4f}",
                markup=False,
                highlight=False,
            )
        return
    verdict = result
    target = summary or (Path(p) if (p := os.environ.get("GITHUB_STEP_SUMMARY")) else None)
    if target is not None:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(verdict.markdown())
    if as_json:
        print(json.dumps(verdict.to_dict(), indent=2, default=str))
    else:
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
    raise typer.Exit(verdict.exit_code)


@app.command()
def export(
    recipe: RecipeArg,
    trial: Annotated[int, typer.Option(min=0, help="The trial whose variant to export.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write the artefact to.")],
    storage: Annotated[str | None, typer.Option(help="Study storage URL.")] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Replace an existing folder; export a screened-out or failed trial."
        ),
    ] = False,
) -> None:
    """Write a trial's variant as a reproducible artefact (weights, history, recipe, versions)."""
    from compresslab.api import export_trial

    path = export_trial(recipe, trial=trial, out_dir=out_dir, storage=storage, force=force)
    out.print(
        f"exported trial {trial} to {path} (reload: compresslab.export.load_variant)",
        markup=False,
        highlight=False,
    )


@app.command()
def compare(
    study_a: Annotated[str, typer.Argument(help="Report folder (with study.db), .db file or URL.")],
    study_b: Annotated[str, typer.Argument(help="The second study, likewise.")],
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
        bool, typer.Option("--force", help="Divide figures of different provenance anyway.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Two studies side by side: variants in both, with their energies, accuracies and ratios."""
    from compresslab.api import compare as run_compare

    comparison = run_compare(study_a, study_b, study_a=name_a, study_b=name_b, force=force)
    if out_dir is not None:
        from compresslab.report.compare import write_comparison

        write_comparison(comparison, out_dir)
    if as_json:
        frame = comparison.frame()
        print(frame.to_json(orient="records", indent=2))
        return
    table = Table(title=escape(f"{comparison.a.study_name} (A) vs {comparison.b.study_name} (B)"))
    for col in ("variant", "acc A", "acc B", "J/inf A", "J/inf B", "B/A", "vs base A", "vs base B"):
        table.add_column(col)

    def num(value: object, spec: str, suffix: str = "") -> str:
        return f"{value:{spec}}{suffix}" if isinstance(value, float) and value == value else "-"

    for r in comparison.rows:
        table.add_row(
            escape(str(r["variant"])),
            num(r["accuracy_a"], ".4f"),
            num(r["accuracy_b"], ".4f"),
            num(r["energy_j_per_inference_a"], ".3g") + f" ({r['provenance_a']})",
            num(r["energy_j_per_inference_b"], ".3g") + f" ({r['provenance_b']})",
            num(r["energy_b_over_a"], ".2f", "x"),
            num(r["ratio_vs_baseline_a"], ".2f", "x"),
            num(r["ratio_vs_baseline_b"], ".2f", "x"),
        )
    out.print(table)
    for warning in comparison.warnings:
        err.print(f"warning: {warning}", markup=False, highlight=False)
    if comparison.only_a or comparison.only_b:
        out.print(
            f"{len(comparison.only_a)} variants only in A, {len(comparison.only_b)} only in B",
            markup=False,
        )


@app.command()
def samplers(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List every energy sampler, whether it can run here, and why (not)."""
    from compresslab.energy import describe_samplers

    rows = describe_samplers()
    if as_json:
        out.print_json(
            json.dumps(
                [
                    {"name": n, "provenance": str(p), "available": a.available, "reason": a.reason}
                    for n, p, a in rows
                ]
            )
        )
        return
    table = Table(title="energy samplers (auto tries rapl, then estimate; model only when named)")
    for col in ("sampler", "provenance", "available", "why"):
        table.add_column(col)
    for n, p, a in rows:
        table.add_row(n, str(p), "yes" if a.available else "no", escape(a.reason))
    out.print(table)


def _print_error(error: BaseException, *, internal: bool = False) -> None:
    """Each line of an error as ``error: ...``, its text never read as markup."""
    if _verbose:
        import traceback

        err.print("".join(traceback.format_exception(error)), markup=False, highlight=False)
    problems = getattr(error, "problems", None)
    if isinstance(error, RecipeError) and problems and len(problems) > 1:
        lines = [str(p) for p in problems]  # one line per problem of a recipe
    else:  # one line, whatever a library put in its message
        lines = [" ".join(str(error).split()) or type(error).__name__]
    if internal:
        lines = [
            f"{type(error).__name__}: {lines[0]} (an unexpected error: run with --verbose for "
            "the traceback, and please report it)"
        ]
    for line in lines:
        err.print(
            "[bold red]error:[/] " + escape(line), highlight=False, soft_wrap=True, emoji=False
        )


def main() -> None:
    """Entry point of the ``compresslab`` command: errors become messages and exit codes.

    Typer handles usage errors itself (exit code 2); a :class:`CompressLabError` becomes one
    line on stderr per problem and its exit code (2 for a bad recipe), and any other error one
    line and exit code 1; ``--verbose`` adds the traceback.
    """
    try:
        app()
    except CompressLabError as e:
        _print_error(e)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted: completed trials are kept in the study; run again to resume")
        sys.exit(130)
    except Exception as e:  # a bug or a library's error that nothing translated: still one line
        _print_error(e, internal=True)
        sys.exit(1)
