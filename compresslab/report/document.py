"""The report as a list of blocks, rendered to markdown (``report.md``) and HTML (``report.html``).

One builder decides what the report says; two small renderers decide how it looks. Every string
that reaches HTML goes through :func:`html.escape`, recipe-given names included.
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass, field
from pathlib import Path

from compresslab import units
from compresslab.carbon import CarbonSettings
from compresslab.report.figures import energy_stars, least_violating, project, search_cost
from compresslab.results import SearchResult, TrialRecord


@dataclass(frozen=True)
class Heading:
    """A section title."""

    text: str
    level: int = 2


@dataclass(frozen=True)
class Para:
    """A paragraph; ``strong`` is shown in bold before ``text``."""

    text: str
    strong: str = ""


@dataclass(frozen=True)
class Bullets:
    """A bulleted list."""

    items: list[str]


@dataclass(frozen=True)
class TableBlock:
    """A table; ``align`` holds ``l`` or ``r`` per column."""

    headers: list[str]
    rows: list[list[str]]
    align: str = ""


@dataclass(frozen=True)
class Image:
    """A picture file beside the report."""

    path: str
    alt: str


@dataclass(frozen=True)
class Link:
    """A link to a file beside the report."""

    href: str
    text: str


Block = Heading | Para | Bullets | TableBlock | Image | Link


@dataclass
class Document:
    """A report: a title and its blocks."""

    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> None:
        """Append blocks."""
        self.blocks.extend(blocks)


# --- formatting helpers ---------------------------------------------------------------------


def fmt_j(j: float) -> str:
    """Joules with a readable prefix."""
    if not math.isfinite(j):
        return "-"
    if j >= 1:
        return f"{j:.3g} J"
    if j >= 1e-3:
        return f"{j * 1e3:.3g} mJ"
    return f"{j * 1e6:.3g} µJ"


def _energy_cell(r: TrialRecord) -> str:
    return f"{fmt_j(r.energy_j_per_inference)} ± {fmt_j(r.ci95_j_per_inference)}"


def ratio_cell(r: TrialRecord) -> str:
    """``0.42x [0.40, 0.44]`` from the trial's pairs; the baseline is the reference."""
    if r.is_baseline and r.complete:
        return "1x (reference)"
    vs = r.vs_baseline if r.ratio_vs_baseline is not None else None
    if vs is None:
        return "-"  # unpaired (an older study): a ratio across sessions is never shown
    return f"{vs['ratio']:.2f}x [{vs['ci95_low']:.2f}, {vs['ci95_high']:.2f}]"


def _acc_cell(r: TrialRecord) -> str:
    if r.accuracy is None:
        return "-"
    if r.accuracy_ci95:
        lo, hi = r.accuracy_ci95
        return f"{r.accuracy:.4f} [{lo:.3f}, {hi:.3f}]"
    return f"{r.accuracy:.4f}"


def _points(drop: float) -> str:
    if abs(drop) < 1e-12:
        return "the same as the baseline"
    where = "below" if drop > 0 else "above"
    return f"{abs(drop) * 100:.2f} points {where} the baseline"


def _carbon(result: SearchResult) -> CarbonSettings | None:
    c = result.info.get("carbon")
    return CarbonSettings(**c) if c else None


def _stars(n: int | None) -> str:
    return "★" * n + "☆" * (5 - n) if n else "-"


def _variant_table(result: SearchResult, records: list[TrialRecord]) -> TableBlock:
    carbon = _carbon(result)
    stars = energy_stars(result)
    rows = []
    for r in records:
        rows.append(
            [
                str(r.number),
                r.variant,
                _acc_cell(r),
                _energy_cell(r),
                f"{r.kwh_per_1k:.3e}",
                ratio_cell(r),
                _stars(stars.get(r.number)),
                r.provenance,
                f"{carbon.gco2e(r.kwh_per_1k):.3g}" if carbon else "-",
                f"{(r.macs_per_inference or 0):,.0f}",
                f"{(r.n_params or 0):,}",
            ]
        )
    return TableBlock(
        [
            "trial",
            "variant",
            "accuracy [95% CI]",
            "energy / inference (95% CI)",
            "kWh / 1000",
            "vs baseline (paired, 95% CI)",
            "label",
            "provenance",
            "gCO2e / 1000",
            "MACs / inference",
            "params",
        ],
        rows,
        "rllllrrllrr",
    )


def _ratio_high(r: TrialRecord) -> float:
    confirmed = r.confirmed or r.vs_baseline or {}
    return float(confirmed.get("ci95_high", math.inf))


def _saving_sentence(result: SearchResult, best: TrialRecord, base: TrialRecord) -> str:
    """The headline: the confirmed paired ratio when there is one, else the search's."""
    carbon = _carbon(result)
    drop = (base.accuracy or 0) - (best.accuracy or 0)
    ratio = best.ratio_vs_baseline
    confirmed = best.confirmed
    shown = float(confirmed["ratio"]) if confirmed else ratio
    if shown is None:
        return (
            f"(trial {best.number}): {fmt_j(best.energy_j_per_inference)} per inference, "
            f"accuracy {best.accuracy:.4f} ({_points(drop)})."
        )
    per_million = units.kwh_per_million(base.energy_j_per_inference * (1 - shown))
    carbon_note = f" ({carbon.gco2e(per_million):.3g} gCO2e)" if carbon else ""
    if confirmed:
        how = (
            f"confirmed after the search: {1 / shown:.2f}x less energy per inference than the "
            f"baseline (ratio {shown:.3f}, 95% CI {confirmed['ci95_low']:.3f} to "
            f"{confirmed['ci95_high']:.3f}, {confirmed['pairs']} interleaved pairs); the search "
            f"itself measured {ratio:.3f}"
        )
    else:
        vs = best.vs_baseline or {}
        how = (
            f"{1 / shown:.2f}x less energy per inference than the baseline as measured in the "
            f"search (ratio {shown:.3f}, 95% CI {vs.get('ci95_low', math.nan):.3f} to "
            f"{vs.get('ci95_high', math.nan):.3f}, paired with the baseline), not confirmed"
        )
    return (
        f"(trial {best.number}): {how}; accuracy {best.accuracy:.4f} ({_points(drop)}); saves "
        f"about {per_million:.3g} kWh per million inferences{carbon_note}."
    )


def frontier_table(result: SearchResult) -> TableBlock:
    """The feasible frontier, cheapest first."""
    return _variant_table(result, result.frontier)


# --- the report -------------------------------------------------------------------------------


def build_document(result: SearchResult) -> Document:
    """Everything the report says, in order."""
    info = result.info
    doc = Document(f"compresslab report: {result.recipe_name}")
    base = result.baseline
    best = result.best_saving()
    doc.add(
        Para(f"Task: {info.get('task', '-')}"),
        Para(
            f"Trials: {len(result.trials)}: {result.counts()} (screened: not measured for "
            f"energy; reused: a repeat of an earlier variant). Optuna sampler "
            f"`{info.get('optuna_sampler')}`, seed {info.get('seed')}; study `{result.study_name}`."
        ),
        Para(f"Accuracy tolerance: {result.tolerance} (minimum {result.min_accuracy:.4f})."),
    )

    doc.add(Heading("Baseline"))
    if base is not None:
        doc.add(
            Para(
                f"Uncompressed model (trial {base.number}): accuracy {_acc_cell(base)}, "
                f"{_energy_cell(base)} per inference ({base.provenance}), "
                f"{base.kwh_per_1k:.3e} kWh per 1000 inferences."
            )
        )
        n_eval = info.get("eval_examples")
        if base.accuracy_ci95 and n_eval:
            lo, hi = base.accuracy_ci95
            doc.add(
                Para(
                    f"On {n_eval} held-out examples the accuracy's 95% interval is "
                    f"{(hi - lo) * 100:.1f} points wide: smaller accuracy differences between "
                    "variants are within sampling noise."
                )
            )
    else:
        doc.add(Para("The baseline trial did not complete: see the failed trials below."))

    doc.add(Heading("Best saving within the tolerance"))
    if best is not None and base is not None and best.number != base.number:
        doc.add(Para(_saving_sentence(result, best, base), strong=best.variant))
        if best.ratio_vs_baseline is None:
            doc.add(Para("This trial was not paired with the baseline (an older study): no ratio."))
        elif _ratio_high(best) >= 1:
            doc.add(
                Para(
                    "The ratio's 95% interval reaches 1: the saving may be noise. "
                    + (
                        ""
                        if best.confirmed
                        else "Run `compresslab report --confirm` to re-measure it with more pairs."
                    )
                )
            )
    elif base is not None:
        doc.add(Para("No variant within the tolerance used less energy than the baseline."))
    else:
        doc.add(Para("-"))

    doc.add(Heading("Pareto frontier (feasible variants)"))
    if result.frontier:
        doc.add(frontier_table(result))
    else:
        doc.add(
            Para(
                "No measured variant is within the accuracy tolerance. The least-violating "
                "ones, most accurate first:"
            ),
            _variant_table(result, least_violating(result)),
        )
    doc.add(
        Para(
            "Label: 1 to 5 stars within this study, the range of energy per inference of its "
            "measured variants cut into five equal bands (5 stars = the cheapest band)."
        ),
        Image("pareto.png", "accuracy vs energy"),
        Link("pareto.html", "interactive Pareto plot"),
        Image("hypervolume.png", "hypervolume over trials"),
    )

    # A generative task: energy per token and per request, perplexity, sample answers.
    from compresslab.report.generation import generation_blocks

    doc.add(*generation_blocks(result))
    _projections(doc, result)
    _search_cost(doc, result)
    _how(doc, result)
    return doc


def _projections(doc: Document, result: SearchResult) -> None:
    proj = result.info.get("projection") or {}
    rate = float(proj.get("requests_per_s", 10.0))
    price = float(proj.get("price_per_kwh", 0.15))
    cur = str(proj.get("currency", "USD"))
    carbon = _carbon(result)
    rows = []
    shown = list(result.frontier)
    if result.baseline is not None and result.baseline not in shown:
        shown.append(result.baseline)
    for r in shown:
        p = project(r, result)
        if p is None:
            continue
        rows.append(
            [
                str(r.number),
                r.variant,
                f"{p.kwh_per_million:.3g}",
                f"{p.gco2e_per_million:.3g}",
                f"{p.cost_per_million:.3g}",
                f"{p.kwh_per_year:.3g}",
                f"{p.kgco2e_per_year:.3g}",
                f"{p.cost_per_year:.3g}",
            ]
        )
    if not rows:
        return
    doc.add(
        Heading("Projections"),
        Para(
            f"At {rate:g} requests per second ({rate * 365.25 * 86400:.3g} inferences a year), "
            f"{price:g} {cur} per kWh"
            + (f", {carbon.describe()}" if carbon else "")
            + ". Energy is this machine's, per the provenance above."
        ),
        TableBlock(
            [
                "trial",
                "variant",
                "kWh / million",
                "gCO2e / million",
                f"{cur} / million",
                "kWh / year",
                "kgCO2e / year",
                f"{cur} / year",
            ],
            rows,
            "rlrrrrrr",
        ),
    )


def _search_cost(doc: Document, result: SearchResult) -> None:
    cost = search_cost(result)
    doc.add(Heading("What the search itself cost"))
    if cost is None:
        doc.add(Para("Not recorded (no session of this study recorded its energy)."))
        return
    states = [str(s.get("state", "finished")) for s in result.info.get("search_energy") or []]
    ended = [
        f"{states.count(state)} {what}"
        for state, what in (("killed", "ended by a kill"), ("running", "still running"))
        if state in states
    ]
    text = (
        f"{fmt_j(cost.energy_j)} ({units.j_to_kwh(cost.energy_j):.3g} kWh, {cost.provenance}) "
        f"over {cost.sessions} session(s)"
        + (f" ({', '.join(ended)})" if ended else "")
        + ": setting up the task, building, evaluating and measuring every variant."
    )
    if ended:
        text += (
            " A session's energy is recorded after every trial: what a killed or still running "
            "session spent after its last checkpoint (at most one trial) is not counted."
        )
    if cost.break_even_inferences is not None:
        text += (
            " The best variant within the tolerance saves "
            f"{fmt_j(cost.saving_j_per_inference or 0)} per inference: it pays the search "
            f"back after {cost.break_even_inferences:,.0f} inferences."
        )
    else:
        text += " No variant within the tolerance saves energy, so the search is not paid back."
    doc.add(Para(text))


def _comparison_notes(result: SearchResult) -> list[str]:
    """How variants were compared, and what disturbed the measurements."""
    done = [r for r in result.completed if r.reused_from is None]
    paired = [r for r in done if r.ratio_vs_baseline is not None and not r.is_baseline]
    notes = []
    if paired:
        notes.append(
            "every variant was measured paired with the baseline: their windows interleaved "
            "(ABBA) in the same span of time, the ratio's interval from the pairs; energy per "
            "inference of a variant = its ratio x the baseline's own figure, so all are on one "
            "scale (each trial's own absolute figure is measured_j_per_inference in trials.csv)"
        )
    contended = [r for r in done if ((r.energy or {}).get("contention") or {}).get("contended")]
    if contended:
        limit = (contended[0].energy or {})["contention"].get("max_foreign_cpus")
        notes.append(
            f"contended: {len(contended)} of {len(done)} trials were measured while other "
            f"processes kept more than {limit} CPUs busy (trials "
            f"{', '.join(str(r.number) for r in contended[:12])}); paired ratios are robust to "
            "this, absolute figures less so"
        )
    missed = [r for r in done if (r.energy or {}).get("ci_target_met") is False]
    if missed:
        notes.append(
            f"the CI target was missed in {len(missed)} of {len(done)} trials "
            "(ci_target_met in trials.csv)"
        )
    systematic = [
        float(v) for r in done if (v := (r.energy or {}).get("systematic_rel")) is not None
    ]
    if systematic:
        notes.append(
            f"systematic uncertainty of absolute joules: ±{max(systematic):.0%} (the sampler's "
            "coefficients); it cancels in ratios measured on one machine"
        )
    return notes


def _how(doc: Document, result: SearchResult) -> None:
    info = result.info
    doc.add(
        Heading("How energy was obtained"),
        Para(f"Sampler selection: {info.get('sampler_selection', '-')}"),
    )
    items = [f"{k}: {v}" for k, v in (info.get("sampler_metadata") or {}).items()]
    items.append(
        f"batch size {info.get('batch_size')}; figures are per inference (one example), the mean "
        "over repeated windows with a 95% confidence interval, net of idle power where the "
        "sampler sees the whole machine (trials.csv has the gross figure and the idle power)"
    )
    items += _comparison_notes(result)
    items.append(
        "modeled_j_per_inference in trials.csv: the deterministic analytic figure (MACs and "
        "bytes x energy per operation), a ranking and a floor, not a measurement"
    )
    if (c := _carbon(result)) is not None:
        items.append(f"carbon: {c.describe()}; kWh stays the primary figure")
    doc.add(
        Bullets(items),
        Para(
            "Provenance labels: measured (hardware counter), integrated (power readings "
            "integrated over time), estimated (activity times stated coefficients), modeled "
            "(counted operations times energy per operation)."
        ),
    )
    if info.get("skipped_methods"):
        doc.add(
            Heading("Methods left out on this machine"),
            Bullets([f"{n}: {w}" for n, w in info["skipped_methods"].items()]),
        )
    if result.screened:
        doc.add(
            Heading("Screened out (energy not measured)"),
            Bullets([f"trial {r.number} ({r.variant}): {r.screened}" for r in result.screened]),
        )
    if result.failed:
        doc.add(
            Heading("Failed trials"),
            Bullets(
                [f"trial {r.number} ({r.variant}): {r.error or 'no reason'}" for r in result.failed]
            ),
        )
    caps = info.get("capabilities") or {}
    if caps:
        flags = (caps.get("cpu") or {}).get("flags") or {}
        torch_caps = caps.get("torch") or {}
        libs = caps.get("libraries") or {}
        items = [f"device: {caps.get('device', '-')}"]
        items.append("CPU features: " + (", ".join(k for k, v in flags.items() if v) or "-"))
        items.append(
            f"torch {torch_caps.get('version', '-')}: bf16 runs: {torch_caps.get('bf16_runs')}, "
            f"quantized engine {torch_caps.get('quantized_engine', '-')}"
        )
        items += [
            f"{name}: {lib.get('version') or '-'}"
            if lib.get("imports") or lib.get("installed")
            else f"{name}: not installed"
            for name, lib in libs.items()
            if isinstance(lib, dict)
        ]
        doc.add(Heading("What this machine can run"), Bullets(items))
    machine = [f"{k}: {v}" for k, v in (info.get("machine") or {}).items()]
    versions = [f"{k} {v}" for k, v in (info.get("versions") or {}).items()]
    doc.add(
        Heading("Machine and versions"),
        Bullets(
            machine
            + [", ".join(versions)]
            + [f"recipe hash: {info.get('recipe_hash')}", f"storage: {result.storage}"]
        ),
        Link("trials.csv", "Full per-trial data: trials.csv (also trials.parquet)"),
    )


# --- renderers ----------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(doc: Document) -> str:
    """``report.md``."""
    out = [f"# {doc.title}", ""]
    for b in doc.blocks:
        if isinstance(b, Heading):
            out += ["#" * b.level + " " + b.text, ""]
        elif isinstance(b, Para):
            out += [(f"**{b.strong}** " if b.strong else "") + b.text, ""]
        elif isinstance(b, Bullets):
            out += [f"- {i}" for i in b.items] + [""]
        elif isinstance(b, TableBlock):
            align = b.align or "l" * len(b.headers)
            out.append("| " + " | ".join(_md_cell(h) for h in b.headers) + " |")
            out.append("|" + "|".join("---:" if a == "r" else "---" for a in align) + "|")
            out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
            out.append("")
        elif isinstance(b, Image):
            out += [f"![{b.alt}]({b.path})", ""]
        elif isinstance(b, Link):
            out += [f"[{b.text}]({b.href})", ""]
    return "\n".join(out).rstrip() + "\n"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1200px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.3em .6em;vertical-align:top}
th{background:#f3f3f3}td.r{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;border:1px solid #eee}code{background:#f3f3f3;padding:0 .2em}
"""


def to_html(doc: Document, *, base_dir: Path) -> str:
    """``report.html``: self-contained (images inlined), every string escaped."""
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(doc.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(doc.title)}</h1>",
    ]
    for b in doc.blocks:
        if isinstance(b, Heading):
            parts.append(f"<h{b.level}>{e(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            strong = f"<strong>{e(b.strong)}</strong> " if b.strong else ""
            parts.append(f"<p>{strong}{e(b.text)}</p>")
        elif isinstance(b, Bullets):
            parts.append("<ul>" + "".join(f"<li>{e(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, TableBlock):
            align = b.align or "l" * len(b.headers)
            head = "".join(f"<th>{e(h)}</th>" for h in b.headers)
            body = "".join(
                "<tr>"
                + "".join(f'<td class="{a}">{e(c)}</td>' for c, a in zip(row, align, strict=False))
                + "</tr>"
                for row in b.rows
            )
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif isinstance(b, Image):
            path = base_dir / b.path
            if path.is_file():
                data = base64.b64encode(path.read_bytes()).decode("ascii")
                parts.append(f'<p><img alt="{e(b.alt)}" src="data:image/png;base64,{data}"></p>')
        elif isinstance(b, Link):
            parts.append(f'<p><a href="{e(b.href)}">{e(b.text)}</a></p>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
