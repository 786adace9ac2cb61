"""The report's sections on the search's outcome, each added to a :class:`.blocks.Document`.

The study at a glance, the baseline, the best saving within the tolerance, the frontier, what
mattered, projections at scale and what the search itself cost, in the order
:func:`compresslab.report.document.build_document` calls them.
"""

from __future__ import annotations

import math

from compresslab import units
from compresslab.records import AccuracyVsBaseline, SearchResult, TrialRecord
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
from compresslab.report.cells import (
    accuracy_cell,
    energy_cell,
    frontier_table,
    points,
    ratio_high,
    variant_table,
)
from compresslab.report.costs import cost_part_blocks, prediction_blocks
from compresslab.report.figures import carbon_settings, least_violating, project, search_cost
from compresslab.report.plot import undecided_claim
from compresslab.report.text import given


def add_summary(doc: Document, result: SearchResult) -> None:
    """The task, the trials and how they were searched, the tolerance."""
    info = result.info
    doc.add(
        Para(f"Task: {given(info.task or '-')}"),
        Para(
            f"Trials: {len(result.trials)}: {result.counts()} (screened: not measured for "
            f"energy; reused: a repeat of an earlier variant). Optuna sampler "
            f"`{info.optuna_sampler}` ({given(info.optuna_sampler_reason)}), "
            f"seed {info.seed}; study {given(result.study_name)}."
        ),
        Para(f"Accuracy tolerance: {result.tolerance} (minimum {result.min_accuracy:.4f})."),
    )


def add_baseline(doc: Document, result: SearchResult) -> None:
    """The uncompressed model's accuracy and energy, and how wide its accuracy interval is."""
    base = result.baseline
    doc.add(Heading("Baseline"))
    if base is None:
        doc.add(Para("The baseline trial did not complete: see the failed trials below."))
        return
    doc.add(
        Para(
            f"Uncompressed model (trial {base.number}): accuracy {accuracy_cell(base)}, "
            f"{energy_cell(base, units.energy_unit([base.energy_j_per_inference]))} per "
            f"inference ({base.provenance}), "
            f"{units.wh_per_million(base.energy_j_per_inference):.3g} Wh per million "
            "inferences."
        )
    )
    n_eval = result.info.eval_examples
    outcomes = base.evaluation.outcomes if base.evaluation is not None else None
    if outcomes is not None:
        doc.add(Para(_pool_sentence(outcomes.n, outcomes.batch_size, base)))
    elif base.accuracy_ci95 and n_eval:
        lo, hi = base.accuracy_ci95
        doc.add(
            Para(
                f"On {n_eval} held-out examples the accuracy's 95% interval is "
                f"{(hi - lo) * 100:.1f} points wide: smaller accuracy differences between "
                "variants are within sampling noise (this study kept no per-example outcomes: "
                "its variants are compared unpaired where it kept their number of examples, "
                "else on their point accuracy)."
            )
        )


def _pool_sentence(pool: int, eval_batch: int, base: TrialRecord) -> str:
    """How accuracy was compared: the pool, the evaluation batch against the measured one."""
    measured = base.energy.batch_size if base.energy is not None else None
    batches = (
        f"; the measured workload runs batches of {measured}, a different batch: a dynamically "
        "quantized variant may answer differently there"
        if measured is not None and measured != eval_batch
        else ""
    )
    return (
        f"Accuracy is compared with the baseline's on the same examples of an evaluation pool of "
        f"{pool:,}, in looks while undecided (docs/accuracy.md), every model scored in the same "
        f"chunks in evaluation batches of {eval_batch}{batches}."
    )


def add_best_saving(doc: Document, result: SearchResult) -> None:
    """The headline: the cheapest feasible variant against the baseline, and its caveats."""
    base, best = result.baseline, result.best_saving()
    doc.add(Heading("Best saving within the tolerance"))
    if best is not None and base is not None and best.number != base.number:
        doc.add(Para(_saving_sentence(result, best, base), strong=given(best.variant)))
        claim = accuracy_claim(best)
        if claim:
            doc.add(Para(claim))
        if best.ratio_vs_baseline is None:
            doc.add(Para("This trial was not paired with the baseline (an older study): no ratio."))
        elif ratio_high(best) >= 1:
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


def accuracy_claim(r: TrialRecord) -> str:
    """What the paired comparison of ``r``'s accuracy with the baseline's decides, in words.

    With the claim's confirmation on the untouched split when there is one. Empty when the
    trial was not compared (a study written before outcomes were kept).
    """
    a = r.accuracy_vs_baseline
    if a is None:
        return ""
    text = f"Accuracy against the baseline: {claim_words(a)}"
    confirmed = r.confirmed
    if confirmed is not None and confirmed.accuracy is not None:
        text += (
            " Confirmed after the search on untouched examples the search never saw: "
            + claim_words(confirmed.accuracy)
        )
    elif confirmed is not None and confirmed.accuracy_note:
        text += f" Accuracy {confirmed.accuracy_note}."
    return text


def claim_words(a: AccuracyVsBaseline) -> str:
    """One comparison in words: the difference, its interval, how it was made, the decision."""
    if a.paired and a.looks > 1:
        how = (
            f"paired on the same {a.examples:,} examples (Newcombe; look {a.look} of {a.looks} "
            f"over a pool of {a.pool:,}, {a.spending} alpha spending, z {a.z:.2f})"
        )
    elif a.paired:
        how = f"paired on the same {a.examples:,} examples (Newcombe)"
    else:
        how = f"unpaired, {a.examples:,} examples (no per-example outcomes were kept)"
    figure = f"{a.delta * 100:+.2f} points, 95% CI {a.low * 100:+.2f} to {a.high * 100:+.2f}, {how}"
    tolerance = f"{a.tolerance * 100:g}-point tolerance"
    if a.decision == "within":
        return f"{figure}: within the {tolerance}."
    if a.decision == "below":
        return f"{figure}: below the {tolerance}."
    more = (
        f" (about {a.examples_to_decide:,} examples would decide it)"
        if a.examples_to_decide
        else ""
    )
    if a.futile:
        return (
            f"{figure}: undecided at the {tolerance}, stopped at look {a.look}: at the rates "
            f"seen even the whole pool of {a.pool:,} would not show it within{more}, so it is "
            "not called within the tolerance."
        )
    return (
        f"{figure}: undecided at the {tolerance}: the examples cannot show it{more}, so it is "
        "not called within the tolerance."
    )


def _saving_sentence(result: SearchResult, best: TrialRecord, base: TrialRecord) -> str:
    """The headline: the confirmed paired ratio when there is one, else the search's."""
    carbon = carbon_settings(result)
    drop = (base.accuracy or 0) - (best.accuracy or 0)
    ratio = best.ratio_vs_baseline
    confirmed = best.confirmed
    shown = confirmed.ratio if confirmed else ratio
    if shown is None:
        return (
            f"(trial {best.number}): {fmt_j(best.energy_j_per_inference)} per inference, "
            f"accuracy {best.accuracy:.4f} ({points(drop)})."
        )
    per_million = units.kwh_per_million(base.energy_j_per_inference * (1 - shown))
    carbon_note = f" ({carbon.gco2e(per_million):.3g} gCO2e)" if carbon else ""
    if confirmed:
        how = (
            f"confirmed after the search: {1 / shown:.2f}x less energy per inference than the "
            f"baseline (ratio {shown:.3f}, 95% CI {confirmed.ci95_low:.3f} to "
            f"{confirmed.ci95_high:.3f}, {confirmed.pairs} interleaved pairs); the search "
            f"itself measured {ratio:.3f}"
        )
    else:
        vs = best.vs_baseline
        low, high = (vs.ci95_low, vs.ci95_high) if vs is not None else (math.nan, math.nan)
        widened = vs is not None and vs.ratio_repeatability_rel is not None
        how = (
            f"{1 / shown:.2f}x less energy per inference than the baseline as measured in the "
            f"search (ratio {shown:.3f}, 95% CI {low:.3f} to {high:.3f}, paired with the baseline"
            + (
                "; the pairs' interval widened by the machine's spread between spans"
                if widened
                else "; the pairs' own interval, no spread between spans known yet"
            )
            + "), not confirmed"
        )
    return (
        f"(trial {best.number}): {how}; accuracy {best.accuracy:.4f} ({points(drop)}); saves "
        f"about {per_million:.3g} kWh per million inferences{carbon_note}."
    )


def add_frontier(doc: Document, result: SearchResult) -> None:
    """The frontier's table (or the least violating variants), the label and the plots."""
    doc.add(Heading("Pareto frontier (variants decided within the tolerance)"))
    if result.frontier:
        doc.add(frontier_table(result))
    else:
        doc.add(
            Para(
                "No measured variant is within the accuracy tolerance. The least-violating "
                "ones, most accurate first:"
            ),
            variant_table(result, least_violating(result)),
        )
    undecided = [r for r in result.completed if undecided_claim(r) and r.reused_from is None]
    if undecided:
        doc.add(
            Para(
                "Not decided against the tolerance (measured, never called within it; hollow "
                "orange rings on the plot):"
            ),
            Bullets(
                [f"trial {r.number} ({r.variant}): {claim_words(r.accuracy_vs_baseline)}"
                 for r in undecided if r.accuracy_vs_baseline is not None]
            ),
        )  # fmt: skip
    doc.add(
        Para(
            "Label: 1 to 5 stars within this study, the range of energy per inference of its "
            "measured variants cut into five equal bands (5 stars = the cheapest band)."
        ),
        Image("pareto.png", "accuracy vs energy"),
        Link("pareto.html", "interactive Pareto plot"),
        Image("hypervolume.png", "hypervolume over trials"),
    )


def add_what_mattered(doc: Document, result: SearchResult) -> None:
    """One sentence on the parameters that drove energy and accuracy, and the parallel view."""
    importance = result.info.importance
    doc.add(Heading("What mattered"))
    if importance is None:
        doc.add(Para("Too few measured variants to say which parameters mattered (fANOVA)."))
        return

    def top(shares: dict[str, float]) -> str:
        ranked = sorted(shares.items(), key=lambda kv: -kv[1])[:2]
        return " and ".join(f"{name} ({share:.0%})" for name, share in ranked)

    doc.add(
        Para(
            f"Energy was driven most by {top(importance.energy)}; accuracy by "
            f"{top(importance.accuracy)} "
            "(share of the variance each parameter explains, fANOVA over the measured "
            "variants; a guide, not a proof, on a search's few trials)."
        ),
        Image("parallel.png", "parameters, accuracy and energy of every measured variant"),
    )


def add_projections(doc: Document, result: SearchResult) -> None:
    """What serving the frontier and the baseline costs at the recipe's rate and price."""
    proj = result.info.projection
    rate, price, cur = proj.requests_per_s, proj.price_per_kwh, given(proj.currency)
    carbon = carbon_settings(result)
    rows = _projection_rows(result)
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


def _projection_rows(result: SearchResult) -> list[list[str]]:
    shown = list(result.frontier)
    if result.baseline is not None and result.baseline not in shown:
        shown.append(result.baseline)
    rows = []
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
    return rows


def add_search_cost(doc: Document, result: SearchResult) -> None:
    """What the search spent, when the best variant pays it back, per part, and predictions."""
    cost = search_cost(result)
    doc.add(Heading("What the search itself cost"))
    if cost is None:
        doc.add(Para("Not recorded (no session of this study recorded its energy)."))
        return
    states = [s.state for s in result.info.sessions]
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
