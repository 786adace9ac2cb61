"""Two studies side by side: the same recipe on two machines, or before and after a change.

Variants are matched by their label (the same compression steps and runtime). For each
variant present in both studies the comparison gives both accuracies and both energies per
inference with their provenance, and two kinds of ratio:

- each study's **paired ratio to its own baseline** (measured interleaved in that study's own
  session): "int8 saves 2.1x on machine B, 1.3x on machine A" compares like with like;
- the **ratio of the two studies' absolute figures** (B / A): measurements from two sessions,
  possibly two machines, each with its own interval. It is only given when both figures have
  the same provenance; an estimated figure is never divided by a measured one.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compresslab import units
from compresslab.records import SearchResult, TrialRecord

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class ComparedVariant:
    """One variant measured in both studies: both figures, and the ratios that may be drawn.

    ``energy_b_over_a`` is None when the two figures were obtained differently (their
    provenance differs) and dividing them was not asked for; ``ratio_vs_baseline_*`` is each
    study's paired ratio to its own baseline (None: not paired); ``accuracy_decision_*`` each
    study's decision of the variant's accuracy against its baseline's on the same examples
    (``within``, ``below``, ``undecided``; None: not compared), and ``frontier_*`` holds only
    variants decided within.
    """

    variant: str
    trial_a: int
    trial_b: int
    accuracy_a: float | None
    accuracy_b: float | None
    accuracy_change: float
    energy_j_per_inference_a: float
    ci95_j_per_inference_a: float
    energy_j_per_inference_b: float
    ci95_j_per_inference_b: float
    provenance_a: str
    provenance_b: str
    energy_b_over_a: float | None
    ratio_vs_baseline_a: float | None
    ratio_vs_baseline_b: float | None
    frontier_a: bool
    frontier_b: bool
    accuracy_decision_a: str | None = None
    accuracy_decision_b: str | None = None


#: Columns of the comparison, in order (the fields of :class:`ComparedVariant`).
COLUMNS = [
    "variant",
    "trial_a",
    "trial_b",
    "accuracy_a",
    "accuracy_b",
    "accuracy_change",
    "energy_j_per_inference_a",
    "ci95_j_per_inference_a",
    "energy_j_per_inference_b",
    "ci95_j_per_inference_b",
    "provenance_a",
    "provenance_b",
    "energy_b_over_a",
    "ratio_vs_baseline_a",
    "ratio_vs_baseline_b",
    "frontier_a",
    "frontier_b",
    "accuracy_decision_a",
    "accuracy_decision_b",
]


def _decision(r: TrialRecord) -> str | None:
    """The variant's accuracy decision against its own study's baseline (None: not compared)."""
    a = r.accuracy_vs_baseline
    return None if a is None else a.decision


@dataclass(frozen=True)
class Comparison:
    """The matched variants of two studies, and what may not be compared (with why)."""

    a: SearchResult
    b: SearchResult
    rows: list[ComparedVariant]
    only_a: list[str]
    only_b: list[str]
    warnings: list[str] = field(default_factory=list)

    def frame(self) -> pd.DataFrame:
        """The rows as a pandas DataFrame (the columns of :data:`COLUMNS`)."""
        import pandas as pd

        return pd.DataFrame([dataclasses.asdict(r) for r in self.rows], columns=COLUMNS)

    def markdown(self) -> str:
        """A short markdown summary: the studies, warnings, and the matched variants."""
        lines = [
            f"# Comparison: {_label(self.a)} (A) vs {_label(self.b)} (B)",
            "",
            f"- A: {_where(self.a)}",
            f"- B: {_where(self.b)}",
            f"- {len(self.rows)} variants in both; {len(self.only_a)} only in A, "
            f"{len(self.only_b)} only in B",
            *[f"- warning: {w}" for w in self.warnings],
            "",
            "| variant | accuracy A | accuracy B | J / inference A | J / inference B | B / A "
            "| vs baseline A | vs baseline B |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in self.rows:
            lines.append(
                f"| {_md(r.variant)} | {_num(r.accuracy_a, '.4f')} "
                f"| {_num(r.accuracy_b, '.4f')} "
                f"| {_energy(r.energy_j_per_inference_a, r.ci95_j_per_inference_a)} "
                f"({r.provenance_a}) "
                f"| {_energy(r.energy_j_per_inference_b, r.ci95_j_per_inference_b)} "
                f"({r.provenance_b}) | {_num(r.energy_b_over_a, '.2f', 'x')} "
                f"| {_num(r.ratio_vs_baseline_a, '.2f', 'x')} "
                f"| {_num(r.ratio_vs_baseline_b, '.2f', 'x')} |"
            )
        return "\n".join(lines) + "\n"


def compare_results(a: SearchResult, b: SearchResult, *, force: bool = False) -> Comparison:
    """Match the variants of two studies and compare them (see the module docstring).

    Args:
        a: the first study's result.
        b: the second study's result.
        force: give B / A of absolute figures also when their provenance differs (said so in
            the warnings).
    """
    first_a = _measured_by_label(a)
    first_b = _measured_by_label(b)
    front_a = {r.number for r in a.frontier}
    front_b = {r.number for r in b.frontier}
    warnings: list[str] = []
    fields_a, fields_b = a.info.recipe_fields, b.info.recipe_fields
    if fields_a is not None and fields_b is not None:
        from compresslab.recipe import recipe_changes

        changes = recipe_changes(fields_a, fields_b)
        if changes:
            warnings.append(
                "the studies' recipes differ in what decides results ("
                + "; ".join(changes[:3])
                + "): a variant's figures may not be comparable"
            )
    mixed = False
    rows: list[ComparedVariant] = []
    for label in [v for v in first_a if v in first_b]:
        ra, rb = first_a[label], first_b[label]
        same_kind = ra.provenance == rb.provenance
        mixed = mixed or not same_kind
        ja, jb = ra.energy_j_per_inference, rb.energy_j_per_inference
        rows.append(
            ComparedVariant(
                variant=label,
                trial_a=ra.number,
                trial_b=rb.number,
                accuracy_a=ra.accuracy,
                accuracy_b=rb.accuracy,
                accuracy_change=(rb.accuracy or 0.0) - (ra.accuracy or 0.0),
                energy_j_per_inference_a=ja,
                ci95_j_per_inference_a=ra.ci95_j_per_inference,
                energy_j_per_inference_b=jb,
                ci95_j_per_inference_b=rb.ci95_j_per_inference,
                provenance_a=ra.provenance,
                provenance_b=rb.provenance,
                energy_b_over_a=jb / ja if (same_kind or force) and ja > 0 else None,
                ratio_vs_baseline_a=1.0 if ra.is_baseline else ra.ratio_vs_baseline,
                ratio_vs_baseline_b=1.0 if rb.is_baseline else rb.ratio_vs_baseline,
                frontier_a=ra.number in front_a,
                frontier_b=rb.number in front_b,
                accuracy_decision_a=_decision(ra),
                accuracy_decision_b=_decision(rb),
            )
        )
    if mixed:
        warnings.append(
            "some variants were obtained differently in the two studies (provenance differs): "
            + (
                "B / A of their absolute figures is given anyway (--mixed-provenance)"
                if force
                else "B / A is left out for them (pass --mixed-provenance to divide anyway); each "
                "study's ratio to its own baseline is comparable"
            )
        )
    machine_a = a.info.machine.get("cpu_model")
    machine_b = b.info.machine.get("cpu_model")
    if machine_a and machine_b and machine_a != machine_b:
        warnings.append(f"two machines: A ran on {machine_a}, B on {machine_b}")
    return Comparison(
        a=a,
        b=b,
        rows=rows,
        only_a=[v for v in first_a if v not in first_b],
        only_b=[v for v in first_b if v not in first_a],
        warnings=warnings,
    )


def write_comparison(comparison: Comparison, out_dir: Path) -> dict[str, Path]:
    """Write ``compare.md``, ``compare.csv`` and ``compare.png`` (both frontiers) to a folder."""
    from compresslab.fsio import atomic_write, atomic_write_text

    out_dir.mkdir(parents=True, exist_ok=True)
    frame = comparison.frame()
    return {
        "compare.md": atomic_write_text(out_dir / "compare.md", comparison.markdown()),
        "compare.csv": atomic_write(
            out_dir / "compare.csv", lambda p: frame.to_csv(p, index=False)
        ),
        "compare.png": atomic_write(out_dir / "compare.png", lambda p: _plot(comparison, p)),
    }


def _plot(comparison: Comparison, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    for result, name, colour in ((comparison.a, "A", "tab:blue"), (comparison.b, "B", "tab:red")):
        done = [r for r in result.completed if r.reused_from is None]
        ax.scatter(
            [units.kwh_per_1k(r.energy_j_per_inference) for r in done],
            [r.accuracy or 0.0 for r in done],
            s=14,
            color=colour,
            alpha=0.35,
        )
        front = result.frontier
        ax.step(
            [units.kwh_per_1k(r.energy_j_per_inference) for r in front],
            [r.accuracy or 0.0 for r in front],
            where="post",
            color=colour,
            marker="o",
            label=f"{name}: {_label(result)} (frontier)",
        )
    ax.set_xlabel("energy per 1000 inferences [kWh]")
    ax.set_ylabel(comparison.a.info.metric)
    ax.set_title("two studies: each frontier on its own baseline's scale")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def _measured_by_label(result: SearchResult) -> dict[str, TrialRecord]:
    out: dict[str, TrialRecord] = {}
    for r in result.completed:
        if r.reused_from is None:
            out.setdefault(r.variant, r)
    return out


def _label(result: SearchResult) -> str:
    return f"{result.study_name}"


def _where(result: SearchResult) -> str:
    machine = result.info.machine
    return (
        f"study {_md(result.study_name)} in {_md(result.storage)}, on "
        f"{_md(machine.get('host', '?'))} ({_md(machine.get('cpu_model', '?'))})"
    )


def _md(text: object) -> str:
    """Recipe- or machine-given text, safe inside a markdown table."""
    import html

    return html.escape(str(text)).replace("|", "\\|")


def _num(value: Any, spec: str, suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:{spec}}{suffix}"


def _energy(j: Any, ci: Any) -> str:
    if j is None or (isinstance(j, float) and math.isnan(j)):
        return "-"
    return f"{j:.3g} ± {ci:.2g} J" if ci is not None and not math.isnan(ci) else f"{j:.3g} J"
