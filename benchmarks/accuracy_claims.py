"""Figure 9 (issue 28): how stable and how narrow the paired, staged accuracy claims are.

For each shipped recipe (digits, fashion-mnist, minilm-wordnet, smollm2) and a few of its
representative compressed variants, built with the package's own
``VariantBench(recipe=..., task=load_task(recipe.task)).build(spec)``:

1. the variant and the baseline are scored on the task's whole evaluation pool **once**
   (:func:`compresslab.bench._staged.pool_outcomes`: right or wrong per example, in the
   study's chunks);
2. for each of 20 evaluation seeds, the pool is put in a seeded random order (the order the
   looks see), and the staged decision is computed on the re-ordered outcomes exactly as the
   search's :func:`~compresslab.bench._staged.compare_in_looks` does: the same look sizes and
   z's (:func:`~compresslab.bench.looks_of`), :func:`~compresslab.records.accuracy_vs_baseline`
   at each look against the recipe's tolerance, stopping at the first decided look;
3. the paired interval's width is set beside the unpaired one's
   (:func:`~compresslab.records.accuracy_vs_baseline_unpaired`, the two accuracies alone) at
   the first look (median over the seeds) and on the whole pool, both at the look's z;
4. each variant is compared once more on the task's untouched confirmation split
   (:func:`~compresslab.bench.confirm_accuracy`), where the task keeps one.

Re-ordering reuses the per-example outcomes of step 1: a dynamically quantized model's
answers can change with the other inputs of its batch, so a real re-ordered evaluation could
differ on a few examples; the seeds vary which examples each look sees, not the batches.

Target: for every decided variant (its most common decision ``within`` or ``below``), at least
95% of the seeds reach that decision.

As figure 9 of ``benchmarks/run.py`` (``--only accuracy``; ``--quick``: digits only, two
variants, three seeds).
"""

from __future__ import annotations

import random
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from benchlib import COMMAND, REPO, Figure, Settings, log, md_table

SEEDS = 20
QUICK_SEEDS = 3
TARGET_AGREEMENT = 0.95

#: Pruning as the recipes' frontiers have it: with recovery epochs (the recipes' larger choice).
DIGITS_PRUNE: dict[str, Any] = {"recovery_epochs": 5}
FASHION_PRUNE: dict[str, Any] = {"recovery_epochs": 2}
#: Representative variants per recipe: (label, steps), steps as (method, params).
VARIANTS: dict[str, list[tuple[str, list[tuple[str, dict[str, Any]]]]]] = {
    "digits": [
        ("prune 0.1 (5 ep.)", [("prune_channels", DIGITS_PRUNE | {"ratio": 0.1})]),
        ("prune 0.3 (5 ep.)", [("prune_channels", DIGITS_PRUNE | {"ratio": 0.3})]),
        (
            "prune 0.1 (5 ep.) + int8",
            [("prune_channels", DIGITS_PRUNE | {"ratio": 0.1}), ("dynamic_int8", {})],
        ),
        (
            "prune 0.3 (5 ep.) + int8",
            [("prune_channels", DIGITS_PRUNE | {"ratio": 0.3}), ("dynamic_int8", {})],
        ),
        ("prune 0.3 (no recovery)", [("prune_channels", {"ratio": 0.3})]),
        ("dynamic_int8", [("dynamic_int8", {})]),
    ],
    "fashion-mnist": [
        ("prune 0.1 (2 ep.)", [("prune_channels", FASHION_PRUNE | {"ratio": 0.1})]),
        ("prune 0.3 (2 ep.)", [("prune_channels", FASHION_PRUNE | {"ratio": 0.3})]),
        (
            "prune 0.3 (2 ep.) + int8",
            [("prune_channels", FASHION_PRUNE | {"ratio": 0.3}), ("dynamic_int8", {})],
        ),
        ("dynamic_int8", [("dynamic_int8", {})]),
    ],
    "minilm-wordnet": [
        ("dynamic_int8", [("dynamic_int8", {})]),
        ("ffn 0.1", [("prune_heads", {"head_ratio": 0.0, "ffn_ratio": 0.1})]),
        ("ffn 0.3", [("prune_heads", {"head_ratio": 0.0, "ffn_ratio": 0.3})]),
        (
            "ffn 0.1 + int8",
            [("prune_heads", {"head_ratio": 0.0, "ffn_ratio": 0.1}), ("dynamic_int8", {})],
        ),
        (
            "ffn 0.3 + int8",
            [("prune_heads", {"head_ratio": 0.0, "ffn_ratio": 0.3}), ("dynamic_int8", {})],
        ),
        ("bf16", [("bf16", {})]),
    ],
    "smollm2": [
        (
            "dynamic_int8 (attention)",
            [("dynamic_int8", {"layers": "attention", "keep_classifier": True})],
        ),
        ("bnb_int8", [("bnb_int8", {"threshold": 6.0})]),
        ("bnb_4bit nf4", [("bnb_4bit", {"quant_type": "nf4"})]),
        ("torchao int8 weight-only", [("torchao_int8_weight_only", {})]),
        ("bf16", [("bf16", {})]),
    ],
}
QUICK = {"digits": ["prune 0.3 (no recovery)", "dynamic_int8"]}


@dataclass
class VariantClaims:
    """One variant's decisions over the seeds, its widths and its confirmation."""

    recipe: str
    label: str
    delta: float = 0.0
    decisions: list[str] = field(default_factory=list)
    examples: list[int] = field(default_factory=list)
    first_paired: list[float] = field(default_factory=list)
    first_unpaired: list[float] = field(default_factory=list)
    pool_paired: float = 0.0
    pool_unpaired: float = 0.0
    pool_interval: tuple[float, float] = (0.0, 0.0)
    pool_decision: str = ""
    discordant: tuple[int, int] = (0, 0)
    to_decide: int | None = None
    confirmed: dict[str, Any] | None = None
    error: str | None = None
    seconds: float = 0.0

    def mode(self) -> tuple[str, float]:
        """The most common decision and the share of seeds that reached it."""
        if not self.decisions:
            return "-", 0.0
        top, count = Counter(self.decisions).most_common(1)[0]
        return top, count / len(self.decisions)


def _staged(cand: list[bool], base: list[bool], looks: Any, tolerance: float, ex: str) -> Any:
    """The decision of the looks on these (re-ordered) outcomes, as ``compare_in_looks``."""
    import dataclasses

    from compresslab.records import Outcomes, accuracy_vs_baseline

    claim = None
    for k, (size, z) in enumerate(zip(looks.sizes, looks.z, strict=True)):
        c = Outcomes.from_correct(cand[:size], batch_size=1, examples_id=ex)
        b = Outcomes.from_correct(base[:size], batch_size=1, examples_id=ex)
        claim = dataclasses.replace(
            accuracy_vs_baseline(c, b, tolerance=tolerance, z=z), look=k + 1, looks=len(looks.sizes)
        )
        if claim.decision != "undecided":
            break
    return claim


def _widths(cand: list[bool], base: list[bool], n: int, z: float, tolerance: float) -> tuple:
    """Paired and unpaired widths on the first ``n`` outcomes at ``z``, and the paired claim."""
    from compresslab.records import Outcomes, accuracy_vs_baseline, accuracy_vs_baseline_unpaired

    c = Outcomes.from_correct(cand[:n], batch_size=1, examples_id="w")
    b = Outcomes.from_correct(base[:n], batch_size=1, examples_id="w")
    p = accuracy_vs_baseline(c, b, tolerance=tolerance, z=z)
    u = accuracy_vs_baseline_unpaired(
        candidate_accuracy=sum(cand[:n]) / n,
        candidate_n=n,
        baseline_accuracy=sum(base[:n]) / n,
        baseline_n=n,
        tolerance=tolerance,
        z=z,
    )
    return p.high - p.low, u.high - u.low, p


def recipe_claims(name: str, labels: list[str] | None, seeds: int) -> tuple[dict, list]:
    """Every listed variant of recipe ``name``, scored once, decided under ``seeds`` orders."""
    from compresslab.api import load_recipe
    from compresslab.bench import VariantBench, baseline_outcomes, confirm_accuracy, looks_of
    from compresslab.bench._staged import pool_outcomes, tolerance_of
    from compresslab.compress import Step, VariantSpec
    from compresslab.tasks import load_task

    t0 = time.perf_counter()
    recipe = load_recipe(REPO / "recipes" / f"{name}.yaml")
    bench = VariantBench(recipe=recipe, task=load_task(recipe.task))
    looks = looks_of(bench)
    base_out = baseline_outcomes(bench)
    tolerance = tolerance_of(bench, base_out)
    base = base_out.correct()
    info = {
        "recipe": name,
        "pool": looks.pool,
        "looks": list(looks.sizes),
        "z": [round(z, 3) for z in looks.z],
        "spending": looks.spending,
        "tolerance": tolerance,
        "baseline_accuracy": base_out.successes / base_out.n,
        "confirmation": bench.task.confirmation() is not None,
        "baseline_s": time.perf_counter() - t0,
    }
    log(f"accuracy: {name} baseline {info['baseline_accuracy']:.4f} on {looks.pool}, looks "
        f"{looks.sizes} ({info['baseline_s']:.0f} s)")  # fmt: skip
    out = []
    for label, steps in VARIANTS[name]:
        if labels is not None and label not in labels:
            continue
        v = VariantClaims(name, label)
        t1 = time.perf_counter()
        try:
            model = bench.build(VariantSpec(tuple(Step(m, p) for m, p in steps)))
            cand = pool_outcomes(bench, model).correct()
            claim = confirm_accuracy(bench, model)
        except Exception as e:  # a variant that cannot be built here is reported, not fatal
            v.error = f"{type(e).__name__}: {e}"
            log(f"accuracy: {name} {label}: {v.error}")
            out.append(v)
            continue
        n = looks.pool
        v.delta = (sum(cand) - sum(base)) / n
        v.pool_paired, v.pool_unpaired, whole = _widths(cand, base, n, looks.z[-1], tolerance)
        v.pool_interval = (whole.low, whole.high)
        v.pool_decision = whole.decision
        v.discordant = (whole.discordant_b, whole.discordant_c)
        v.to_decide = whole.examples_to_decide
        for seed in range(seeds):
            order = random.Random(seed).sample(range(n), n)
            c = [cand[i] for i in order]
            b = [base[i] for i in order]
            decided = _staged(c, b, looks, tolerance, f"seed{seed}")
            v.decisions.append(decided.decision)
            v.examples.append(decided.examples)
            fp, fu, _ = _widths(c, b, looks.sizes[0], looks.z[0], tolerance)
            v.first_paired.append(fp)
            v.first_unpaired.append(fu)
        if claim is not None:
            v.confirmed = {
                "delta": claim.delta,
                "low": claim.low,
                "high": claim.high,
                "decision": claim.decision,
                "examples": claim.examples,
            }
        v.seconds = time.perf_counter() - t1
        log(f"accuracy: {name} {label}: {v.delta:+.4f}, {Counter(v.decisions)} "
            f"({v.seconds:.0f} s)")  # fmt: skip
        out.append(v)
        del model
    return info, out


def _pts(x: float) -> str:
    return f"{100 * x:+.2f}"


def _row(v: VariantClaims) -> list[Any]:
    if v.error:
        return [v.recipe, v.label, f"not built: {v.error[:80]}", *["-"] * 9]
    counts = Counter(v.decisions)
    top, share = v.mode()
    decided = top != "undecided"
    fp, fu = statistics.median(v.first_paired), statistics.median(v.first_unpaired)
    conf = (
        f"{v.confirmed['decision']} ({_pts(v.confirmed['delta'])} "
        f"[{_pts(v.confirmed['low'])}, {_pts(v.confirmed['high'])}], n={v.confirmed['examples']})"
        if v.confirmed
        else "no split"
    )
    return [
        v.recipe,
        v.label,
        f"{_pts(v.delta)} [{_pts(v.pool_interval[0])}, {_pts(v.pool_interval[1])}] "
        f"(b={v.discordant[0]}, c={v.discordant[1]})",
        f"{100 * fp:.2f} / {100 * fu:.2f} ({fp / fu:.2f})",
        f"{100 * v.pool_paired:.2f} / {100 * v.pool_unpaired:.2f} "
        f"({v.pool_paired / v.pool_unpaired:.2f})",
        f"{counts['within']}/{counts['below']}/{counts['undecided']}",
        f"{statistics.median(v.examples):.0f}",
        f"{100 * share:.0f}% {top}",
        ("met" if share >= TARGET_AGREEMENT else "missed")
        if decided
        else "n/a (undecided; "
        + (f"{v.to_decide:,} examples would decide)" if v.to_decide else "no pool would)"),
        conf,
    ]


def _summary(variants: list[VariantClaims], infos: list[dict[str, Any]]) -> str:
    """What stays undecided and why, and where the confirmation split decides otherwise."""
    lines = []
    for info in infos:
        if "error" in info:
            continue
        mine = [v for v in variants if v.recipe == info["recipe"] and not v.error]
        undecided = [v for v in mine if v.mode()[0] == "undecided"]
        if undecided:
            lines.append(
                f"- {info['recipe']}: {len(undecided)} of {len(mine)} variants undecided on the "
                f"{info['pool']:,}-example pool ("
                + ", ".join(
                    f"{v.label} {_pts(v.delta)} points, "
                    + (f"{v.to_decide:,} examples would decide" if v.to_decide else "none would")
                    for v in undecided
                )
                + ")."
            )
    differ = [v for v in variants if v.confirmed and v.confirmed["decision"] != v.mode()[0]]
    if differ:
        lines.append(
            "- The confirmation split decides otherwise than the pool for "
            + ", ".join(
                f"{v.recipe} {v.label} (pool {v.mode()[0]}, confirmation {v.confirmed['decision']})"
                for v in differ
            )
            + ": a different sample of examples (and the confirmation's one look at z 1.96 "
            "against the pool's repeated intervals at a larger z)."
        )
    return "\n".join(lines)


def run(settings: Settings) -> Figure:
    """Figure 9: the paired, staged accuracy claims of the shipped recipes under 20 orders."""
    import torch

    # One thread: the machine is shared by other jobs; timings stay honest.
    torch.set_num_threads(1)
    seeds = QUICK_SEEDS if settings.quick else SEEDS
    plan = QUICK if settings.quick else {name: None for name in VARIANTS}
    infos, variants = [], []
    for name, labels in plan.items():
        try:
            info, vs = recipe_claims(name, labels, seeds)
        except Exception as e:  # a task that cannot load here (a missing package) is reported
            log(f"accuracy: {name} not run: {type(e).__name__}: {e}")
            infos.append({"recipe": name, "error": f"{type(e).__name__}: {e}"})
            continue
        infos.append(info)
        variants += vs
    decided = [v for v in variants if not v.error and v.mode()[0] != "undecided"]
    missed = [v for v in decided if v.mode()[1] < TARGET_AGREEMENT]
    met = None if not decided else not missed
    ratios_first = [
        statistics.median(v.first_paired) / statistics.median(v.first_unpaired)
        for v in variants
        if not v.error and v.decisions
    ]
    ratios_pool = [v.pool_paired / v.pool_unpaired for v in variants if not v.error]
    built = [v for v in variants if not v.error]
    headline = (
        f"{len(decided) - len(missed)} of {len(decided)} decided variants reach their decision "
        f"in >= {TARGET_AGREEMENT:.0%} of {seeds} evaluation orders; "
        f"{len(built) - len(decided)} of {len(built)} variants stay undecided on their pool"
        + (f" (missed: {', '.join(f'{v.recipe} {v.label}' for v in missed)})" if missed else "")
        + (
            f"; paired/unpaired interval width {statistics.median(ratios_first):.2f} at the "
            f"first look, {statistics.median(ratios_pool):.2f} on the whole pool (medians of "
            f"{len(ratios_pool)} variants)"
            if ratios_pool
            else ""
        )
    )
    pools = md_table(
        ["recipe", "pool", "looks (examples)", "z per look", "tolerance", "baseline", "confirm"],
        [
            [i["recipe"], "-", f"not run: {i['error'][:100]}", "-", "-", "-", "-"]
            if "error" in i
            else [
                i["recipe"],
                f"{i['pool']:,}",
                ", ".join(str(s) for s in i["looks"]),
                ", ".join(f"{z:.2f}" for z in i["z"]) + f" ({i['spending'] or 'one look'})",
                f"{100 * i['tolerance']:.2f} points",
                f"{100 * i['baseline_accuracy']:.2f}%",
                "yes" if i["confirmation"] else "no split",
            ]
            for i in infos
        ],
    )
    table = md_table(
        [
            "recipe",
            "variant",
            "pool diff, points [interval at last z] (b: variant only right, c: baseline only)",
            "first look width paired / unpaired (ratio)",
            "whole pool width paired / unpaired (ratio)",
            "within/below/undecided",
            "examples used (median)",
            "agreement",
            "target",
            "confirmation split",
        ],
        [_row(v) for v in variants],
    )
    reasons = []
    for v in missed:
        counts = Counter(v.decisions)
        reasons.append(
            f"- {v.recipe} {v.label}: {v.mode()[1]:.0%} agreement "
            f"({counts['within']} within, {counts['below']} below, {counts['undecided']} "
            f"undecided); its pool difference {_pts(v.delta)} points lies near the tolerance's "
            f"edge, where the order of the examples decides at which look the interval crosses it"
        )
    body = "\n\n".join(
        [
            "Each variant and the baseline are scored once on the task's whole evaluation "
            "pool (right or wrong per example, `pool_outcomes`), built with "
            "`VariantBench(recipe=..., task=load_task(recipe.task)).build(spec)`. For each of "
            f"{seeds} evaluation seeds the pool is put in a seeded random order and the staged "
            "comparison runs on the re-ordered outcomes as the search's `compare_in_looks` does "
            "(the recipe's look sizes and z's from `looks_of`, `accuracy_vs_baseline(..., z=...)` "
            "at each look against the recipe's tolerance, stopping at the first decided look). "
            "**Limitation:** re-ordering reuses the per-example outcomes: a dynamically "
            "quantized model's answers can change with the other inputs of its batch, so a real "
            "evaluation in another order could differ on a few examples; the seeds vary which "
            "examples each look sees, not the batches.",
            pools,
            "Widths are in points, both at the look's z (the first look's for the first look, "
            "the last look's for the whole pool); the first look's is the median over the seeds. "
            "Unpaired: Newcombe's interval for two independent accuracies "
            "(`accuracy_vs_baseline_unpaired`), what a claim without per-example outcomes gets. "
            "Agreement: the share of seeds whose decision is the most common one (target >= "
            f"{TARGET_AGREEMENT:.0%} for a decided variant; an undecided one has no claim to "
            "agree on). Confirmation: the variant against the baseline once on the task's "
            "untouched confirmation split (`confirm_accuracy`, z 1.96), decision (difference "
            "[interval], examples).",
            table,
            "\n".join(reasons) if reasons else "No decided variant missed the agreement target.",
            _summary(variants, infos),
        ]
    )
    return Figure(
        key="accuracy",
        number=9,
        title="Accuracy claims: paired, staged decisions under re-ordered evaluations",
        target=f">= {TARGET_AGREEMENT:.0%} of evaluation orders reach a decided variant's decision",
        met=met,
        headline=headline,
        body=body,
        data={
            "seeds": seeds,
            "recipes": infos,
            "variants": [
                v.__dict__
                | {"pool_interval": list(v.pool_interval), "discordant": list(v.discordant)}
                for v in variants
            ],
        },
        command=f"{COMMAND} --only accuracy",
    )
