"""The report as a list of blocks, rendered to markdown (``report.md``) and HTML (``report.html``).

One builder decides what the report says; two small renderers decide how it looks. Every string
that reaches HTML goes through :func:`html.escape`, recipe-given names included; in markdown,
text given by the recipe or the user's code is escaped (marked with :func:`.text.given`).
"""

from __future__ import annotations

import math

from compresslab import units
from compresslab.carbon import CarbonSettings
from compresslab.records import SearchResult, TrialRecord
from compresslab.report.blocks import (
    Bullets,
    Document,
    Heading,
    Image,
    Link,
    Para,
    TableBlock,
    fmt_j,
)
from compresslab.report.costs import cost_part_blocks, prediction_blocks
from compresslab.report.figures import energy_stars, least_violating, project, search_cost
from compresslab.report.text import given

# --- formatting helpers ---------------------------------------------------------------------


def _energy_cell(r: TrialRecord, unit: tuple[float, str]) -> str:
    """``1.23 ± 0.04 mJ`` in the table's unit."""
    if not math.isfinite(r.energy_j_per_inference):
        return "-"
    factor, name = unit
    return f"{r.energy_j_per_inference * factor:.3g} ± {r.ci95_j_per_inference * factor:.2g} {name}"


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
    unit = units.energy_unit([r.energy_j_per_inference for r in records])
    rows = []
    for r in records:
        rows.append(
            [
                str(r.number),
                given(r.variant),
                _acc_cell(r),
                _energy_cell(r, unit),
                f"{units.wh_per_million(r.energy_j_per_inference):.3g}",
                _latency_cell(r),
                _size_cell(r),
                ratio_cell(r),
                _stars(stars.get(r.number)),
                r.provenance,
                f"{carbon.gco2e(units.kwh_per_million(r.energy_j_per_inference)):.3g}"
                if carbon
                else "-",
                f"{(r.macs_per_inference or 0):,.0f}",
                f"{(r.n_params or 0):,}",
            ]
        )
    return TableBlock(
        [
            "trial",
            "variant",
            "accuracy [95% CI]",
            f"energy / inference [{unit[1]}] (95% CI)",
            "Wh / million",
            "latency / batch p50, p95 [ms]",
            "size [MB]",
            "vs baseline (paired, 95% CI)",
            "label",
            "provenance",
            "gCO2e / million",
            "MACs / inference",
            "params",
        ],
        rows,
        "rlllrrrlllrrr",
    )


def _latency_cell(r: TrialRecord) -> str:
    e = r.energy or {}
    p50, p95 = e.get("latency_p50_s_per_batch"), e.get("latency_p95_s_per_batch")
    if not isinstance(p50, int | float) or not isinstance(p95, int | float):
        return "-"
    return f"{p50 * 1e3:.3g}, {p95 * 1e3:.3g}"


def _size_cell(r: TrialRecord) -> str:
    return f"{r.size_bytes / 1e6:.3g}" if r.size_bytes else "-"


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
        widened = vs.get("ratio_repeatability_rel") is not None
        how = (
            f"{1 / shown:.2f}x less energy per inference than the baseline as measured in the "
            f"search (ratio {shown:.3f}, 95% CI {vs.get('ci95_low', math.nan):.3f} to "
            f"{vs.get('ci95_high', math.nan):.3f}, paired with the baseline"
            + (
                "; the pairs' interval widened by the machine's spread between spans"
                if widened
                else "; the pairs' own interval, no spread between spans known yet"
            )
            + "), not confirmed"
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
    doc = Document(f"compresslab report: {given(result.recipe_name)}")
    base = result.baseline
    best = result.best_saving()
    doc.add(
        Para(f"Task: {given(info.get('task') or '-')}"),
        Para(
            f"Trials: {len(result.trials)}: {result.counts()} (screened: not measured for "
            f"energy; reused: a repeat of an earlier variant). Optuna sampler "
            f"`{info.get('optuna_sampler')}` ({given(info.get('optuna_sampler_reason', '-'))}), "
            f"seed {info.get('seed')}; study {given(result.study_name)}."
        ),
        Para(f"Accuracy tolerance: {result.tolerance} (minimum {result.min_accuracy:.4f})."),
    )

    doc.add(Heading("Baseline"))
    if base is not None:
        doc.add(
            Para(
                f"Uncompressed model (trial {base.number}): accuracy {_acc_cell(base)}, "
                f"{_energy_cell(base, units.energy_unit([base.energy_j_per_inference]))} per "
                f"inference ({base.provenance}), "
                f"{units.wh_per_million(base.energy_j_per_inference):.3g} Wh per million "
                "inferences."
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
        doc.add(Para(_saving_sentence(result, best, base), strong=given(best.variant)))
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
    _what_mattered(doc, result)

    # A generative task: energy per token and per request, perplexity, sample answers.
    from compresslab.report.generation import generation_blocks

    doc.add(*generation_blocks(result))
    _projections(doc, result)
    _search_cost(doc, result)
    _how(doc, result)
    return doc


def _what_mattered(doc: Document, result: SearchResult) -> None:
    """One sentence on the parameters that drove energy and accuracy, and the parallel view."""
    importance = result.info.get("importance")
    doc.add(Heading("What mattered"))
    if not importance:
        doc.add(Para("Too few measured variants to say which parameters mattered (fANOVA)."))
        return

    def top(objective: str) -> str:
        ranked = sorted(importance[objective].items(), key=lambda kv: -kv[1])[:2]
        return " and ".join(f"{name} ({share:.0%})" for name, share in ranked)

    doc.add(
        Para(
            f"Energy was driven most by {top('energy')}; accuracy by {top('accuracy')} "
            "(share of the variance each parameter explains, fANOVA over the measured "
            "variants; a guide, not a proof, on a search's few trials)."
        ),
        Image("parallel.png", "parameters, accuracy and energy of every measured variant"),
    )


def _projections(doc: Document, result: SearchResult) -> None:
    proj = result.info.get("projection") or {}
    rate = float(proj.get("requests_per_s", 10.0))
    price = float(proj.get("price_per_kwh", 0.15))
    cur = given(proj.get("currency", "USD"))
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
                given(r.variant),
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
            f"back after {cost.break_even_text()}."
        )
    else:
        text += " No variant within the tolerance saves energy, so the search is not paid back."
    doc.add(Para(text), *cost_part_blocks(result), *prediction_blocks(result))


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
        widened = [
            r for r in paired if (r.vs_baseline or {}).get("ratio_repeatability_rel") is not None
        ]
        if widened:
            rels = [float((r.vs_baseline or {})["ratio_repeatability_rel"]) for r in widened]
            notes.append(
                f"{len(widened)} of {len(paired)} ratios were measured on a machine whose "
                "repeatability of paired ratios between spans was known (learnt from "
                "confirmation rounds and repeated paired measurements): their intervals hold it "
                f"in quadrature with the pairs' (± {100 * min(rels):.1f}% to "
                f"± {100 * max(rels):.1f}% on the log scale; ratio_ci95_low_pairs/"
                "ratio_ci95_high_pairs in trials.csv keep the pairs' own)"
                + (
                    "; the others' intervals are their pairs' only"
                    if len(widened) < len(paired)
                    else ""
                )
            )
        else:
            notes.append(
                "no repeatability of paired ratios between spans was known on the machine when "
                "the variants were measured: their intervals are their pairs' only (a few "
                "seconds); a confirmation of the frontier teaches it"
            )
    repeat = result.info.get("repeatability")
    if repeat:
        notes.append(
            f"between measurements, the baseline's absolute figure varied by {repeat['cv']:.1%} "
            f"(CV over the {repeat['n']} times it was measured beside a variant); absolute "
            "intervals include this spread (paired ratios cancel it side by side; what moves "
            "them between spans is their own term)"
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


def _why(r: TrialRecord, reason: object) -> str:
    return f"trial {r.number} ({given(r.variant)}): {given(reason)}"


def _how(doc: Document, result: SearchResult) -> None:
    info = result.info
    doc.add(
        Heading("How energy was obtained"),
        Para(f"Sampler selection: {info.get('sampler_selection', '-')}"),
    )
    items = [f"{k}: {given(v)}" for k, v in (info.get("sampler_metadata") or {}).items()]
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
    if info.get("left_out"):
        doc.add(
            Heading("Left out for this model and data (found before the first trial)"),
            Bullets([f"{given(n)}: {given(w)}" for n, w in info["left_out"].items()]),
        )
    if result.screened:
        doc.add(
            Heading("Screened out (energy not measured)"),
            Bullets([_why(r, r.screened) for r in result.screened]),
        )
    if result.failed:
        doc.add(
            Heading("Failed trials"),
            Bullets([_why(r, r.error or "no reason") for r in result.failed]),
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
    machine = [f"{k}: {given(v)}" for k, v in (info.get("machine") or {}).items()]
    versions = [f"{k} {v}" for k, v in (info.get("versions") or {}).items()]
    doc.add(
        Heading("Machine and versions"),
        Bullets(
            machine
            + [", ".join(versions)]
            + [f"recipe hash: {info.get('recipe_hash')}", f"storage: {given(result.storage)}"]
        ),
        Link("trials.csv", "Full per-trial data: trials.csv (also trials.parquet)"),
    )


# --- renderers ----------------------------------------------------------------------------------
