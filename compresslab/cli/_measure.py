"""``compresslab measure``: a recipe's baseline, or one trial's variant, measured on its own."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from compresslab.cli._app import RecipeArg, app, out

if TYPE_CHECKING:
    from compresslab.records import EnergyResult, Measurement, PairedRatio


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
    from compresslab.api import measure as run

    result = run(recipe, trial=trial, storage=storage)
    if as_json:
        print(json.dumps(result.to_json(), indent=2, default=str))
        return
    out.print(_measurement_table(result))


def _measurement_table(result: Measurement) -> Table:
    """The rows ``compresslab measure`` prints for one measurement."""
    from compresslab import units

    ev = result.evaluation
    assert ev is not None  # a recipe's measurement evaluates its model
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
