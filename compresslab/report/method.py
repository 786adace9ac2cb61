"""The report's closing sections: how energy was obtained, what was left out, the machine.

Each ``add_*`` function adds its section to a :class:`.blocks.Document`, in the order
:func:`compresslab.report.document.build_document` calls them.
"""

from __future__ import annotations

from compresslab.records import Capabilities, SearchResult, TrialRecord
from compresslab.report.blocks import Bullets, Document, Heading, Link, Para
from compresslab.report.figures import carbon_settings
from compresslab.report.text import given


def add_method(doc: Document, result: SearchResult) -> None:
    """How energy was obtained: the sampler, the protocol, what disturbed the measurements."""
    info = result.info
    doc.add(
        Heading("How energy was obtained"),
        Para(f"Sampler selection: {info.sampler_selection}"),
    )
    items = [f"{k}: {given(v)}" for k, v in info.sampler_metadata.items()]
    items.append(
        f"batch size {info.batch_size}; figures are per inference (one example), the mean "
        "over repeated windows with a 95% confidence interval, net of idle power where the "
        "sampler sees the whole machine (trials.csv has the gross figure and the idle power)"
    )
    items += _comparison_notes(result)
    items.append(
        "modeled_j_per_inference in trials.csv: the deterministic analytic figure (MACs and "
        "bytes x energy per operation), a ranking and a floor, not a measurement"
    )
    if (c := carbon_settings(result)) is not None:
        items.append(f"carbon: {c.describe()}; kWh stays the primary figure")
    doc.add(
        Bullets(items),
        Para(
            "Provenance labels: measured (hardware counter), integrated (power readings "
            "integrated over time), estimated (activity times stated coefficients), modeled "
            "(counted operations times energy per operation)."
        ),
    )


def _comparison_notes(result: SearchResult) -> list[str]:
    """How variants were compared, and what disturbed the measurements."""
    done = [r for r in result.completed if r.reused_from is None]
    notes = _pairing_notes(done)
    repeat = result.info.repeatability
    if repeat is not None:
        notes.append(
            f"between measurements, the baseline's absolute figure varied by {repeat.cv:.1%} "
            f"(CV over the {repeat.n} times it was measured beside a variant); absolute "
            "intervals include this spread (paired ratios cancel it side by side; what moves "
            "them between spans is their own term)"
        )
    contended = [r for r in done if r.energy is not None and r.energy.contention.contended]
    if contended:
        first = contended[0].energy
        limit = first.contention.max_foreign_cpus if first is not None else None
        notes.append(
            f"contended: {len(contended)} of {len(done)} trials were measured while other "
            f"processes kept more than {limit} CPUs busy (trials "
            f"{', '.join(str(r.number) for r in contended[:12])}); paired ratios are robust to "
            "this, absolute figures less so"
        )
    missed = [r for r in done if r.energy is not None and not r.energy.ci_target_met]
    if missed:
        notes.append(
            f"the CI target was missed in {len(missed)} of {len(done)} trials "
            "(ci_target_met in trials.csv)"
        )
    systematic = [
        r.energy.systematic_rel
        for r in done
        if r.energy is not None and r.energy.systematic_rel is not None
    ]
    if systematic:
        notes.append(
            f"systematic uncertainty of absolute joules: ±{max(systematic):.0%} (the sampler's "
            "coefficients); it cancels in ratios measured on one machine"
        )
    return notes


def _pairing_notes(done: list[TrialRecord]) -> list[str]:
    """How the variants were paired with the baseline, and how wide their intervals are."""
    paired = [r for r in done if r.ratio_vs_baseline is not None and not r.is_baseline]
    if not paired:
        return []
    notes = [
        "every variant was measured paired with the baseline: their windows interleaved "
        "(ABBA) in the same span of time, the ratio's interval from the pairs; energy per "
        "inference of a variant = its ratio x the baseline's own figure, so all are on one "
        "scale (each trial's own absolute figure is measured_j_per_inference in trials.csv)"
    ]
    rels = [
        r.vs_baseline.ratio_repeatability_rel
        for r in paired
        if r.vs_baseline is not None and r.vs_baseline.ratio_repeatability_rel is not None
    ]
    if rels:
        notes.append(
            f"{len(rels)} of {len(paired)} ratios were measured on a machine whose "
            "repeatability of paired ratios between spans was known (learnt from "
            "confirmation rounds and repeated paired measurements): their intervals hold it "
            f"in quadrature with the pairs' (± {100 * min(rels):.1f}% to "
            f"± {100 * max(rels):.1f}% on the log scale; ratio_ci95_low_pairs/"
            "ratio_ci95_high_pairs in trials.csv keep the pairs' own)"
            + ("; the others' intervals are their pairs' only" if len(rels) < len(paired) else "")
        )
    else:
        notes.append(
            "no repeatability of paired ratios between spans was known on the machine when "
            "the variants were measured: their intervals are their pairs' only (a few "
            "seconds); a confirmation of the frontier teaches it"
        )
    return notes


def _why(r: TrialRecord, reason: object) -> str:
    return f"trial {r.number} ({given(r.variant)}): {given(reason)}"


def add_left_out(doc: Document, result: SearchResult) -> None:
    """Methods and variants left out, screened out or failed, each with its reason."""
    info = result.info
    if info.skipped_methods:
        doc.add(
            Heading("Methods left out on this machine"),
            Bullets([f"{n}: {w}" for n, w in info.skipped_methods.items()]),
        )
    if info.left_out:
        doc.add(
            Heading("Left out for this model and data (found before the first trial)"),
            Bullets([f"{given(n)}: {given(w)}" for n, w in info.left_out.items()]),
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


def add_machine(doc: Document, result: SearchResult) -> None:
    """What the machine can run, the machine itself, the versions, and the data's files."""
    info = result.info
    if info.capabilities is not None:
        doc.add(Heading("What this machine can run"), Bullets(_capabilities(info.capabilities)))
    machine = [f"{k}: {given(v)}" for k, v in info.machine.items()]
    versions = [f"{k} {v}" for k, v in info.versions.items()]
    doc.add(
        Heading("Machine and versions"),
        Bullets(
            machine
            + [", ".join(versions)]
            + [f"recipe hash: {info.recipe_hash}", f"storage: {given(result.storage)}"]
        ),
        Link("trials.csv", "Full per-trial data: trials.csv (also trials.parquet)"),
    )


def _capabilities(caps: Capabilities) -> list[str]:
    """The device, the CPU features, torch's bf16 and quantized engine, the libraries."""
    flags = caps.cpu.flags or {}
    torch_caps = caps.torch
    items = [f"device: {_or_dash(caps.device)}"]
    items.append("CPU features: " + (", ".join(k for k, v in flags.items() if v) or "-"))
    items.append(
        f"torch {_or_dash(torch_caps.version)}: bf16 runs: {torch_caps.bf16_runs}, "
        f"quantized engine {_or_dash(torch_caps.quantized_engine)}"
    )
    items += [
        f"{name}: {lib.version or '-'}" if lib.present else f"{name}: not installed"
        for name, lib in caps.libraries.items()
    ]
    return items


def _or_dash(value: str | None) -> str:
    return "-" if value is None else value
