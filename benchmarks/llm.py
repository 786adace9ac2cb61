"""The flagship figure: energy per generated token of SmolLM2-135M-Instruct, and what saves it.

1. **Best saving within the tolerance**: the flagship search (``recipes/smollm2.yaml``: within
   1 accuracy point and +5% perplexity), its best variant's ratio per generated token as
   confirmed after the search (paired with the baseline, windows interleaved). Target: at
   least 2x. With ``--reuse-reports DIR`` an earlier search's study is read instead.
2. **bitsandbytes and the rest, at the baseline's runtime**: NF4, LLM.int8(), bf16 (and the
   KV cache turned off) measured paired against the float baseline, ``--pairs`` pairs each,
   whatever their quality (the search does not measure a variant outside the tolerance). Each
   with its perplexity and accuracy, so "saves energy" and "keeps quality" are read together.

Writes ``benchmarks/out/llm/results.json`` and prints a markdown snippet for RESULTS.md.
Standalone: ``python benchmarks/llm.py [--reuse-reports DIR] [--pairs N] [--no-kv]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import OUT, REPO, close_stamp, log, machine_info, md_table, run_stamp, verdict

RECIPE = REPO / "recipes" / "smollm2.yaml"
COMMAND = ".venv/bin/python benchmarks/llm.py"
TARGET = 2.0

#: Variants measured against the baseline at its own runtime (label, steps, runtime).
CONTRASTS: list[tuple[str, list[tuple[str, dict[str, Any]]], dict[str, Any]]] = [
    ("bitsandbytes NF4", [("bnb_4bit", {"quant_type": "nf4"})], {}),
    ("bitsandbytes LLM.int8() (threshold 6)", [("bnb_int8", {"threshold": 6.0})], {}),
    ("bf16", [("bf16", {})], {}),
    ("KV cache off (fp32)", [], {"kv_cache": False}),
]


def _search(out: Path, reuse: Path | None) -> tuple[Any, Any, dict[str, Any]]:
    from compresslab.api import load_recipe, search
    from compresslab.study.commands import load_result

    stamp = run_stamp()
    if reuse is not None:
        recipe = load_recipe(RECIPE).model_copy(update={"output": str(reuse)})
        result = load_result(recipe)
        how = f"read from {reuse}"
    else:
        data = load_recipe(RECIPE).model_dump(mode="json")
        data["output"] = str(out / "reports")
        data["search"]["storage"] = None
        shutil.rmtree(out / "reports" / data["name"], ignore_errors=True)
        recipe = load_recipe(data)
        log(f"searching {RECIPE.name} ({recipe.search.trials} variants)")
        result = search(recipe, fresh=True)
        how = "searched now"
    return recipe, result, {**close_stamp(stamp), "how": how}


def _best(result: Any) -> dict[str, Any]:
    best = result.best_saving()
    base = result.baseline
    if best is None or base is None or best.is_baseline:
        return {"variant": None}
    confirmed = best.confirmed
    ratio = confirmed.ratio if confirmed is not None else best.ratio_vs_baseline
    assert ratio is not None  # a frontier variant other than the baseline is paired
    compression_only = [r for r in result.frontier if " @ " not in r.variant and not r.is_baseline]
    return {
        "trial": best.number,
        "variant": best.variant,
        "ratio": ratio,
        "ci95": [confirmed.ci95_low, confirmed.ci95_high] if confirmed else [None, None],
        "pairs": confirmed.pairs if confirmed is not None else None,
        "confirmed": confirmed is not None,
        "search_ratio": best.ratio_vs_baseline,
        "saving_x": 1 / ratio,
        "accuracy": best.accuracy,
        "baseline_accuracy": base.accuracy,
        "perplexity_ratio": best.quality.perplexity_ratio,
        "perplexity_ratio_ci95": best.quality.perplexity_ratio_ci95,
        "compression_only_frontier": [r.variant for r in compression_only],
        "frontier": [
            {
                "trial": r.number,
                "variant": r.variant,
                "ratio": r.confirmed.ratio if r.confirmed is not None else r.ratio_vs_baseline,
                "accuracy": r.accuracy,
                "perplexity_ratio": r.quality.perplexity_ratio,
            }
            for r in result.frontier
        ],
        "screened": [{"variant": r.variant, "why": r.screened} for r in result.screened],
        "measured": [
            {
                "variant": r.variant,
                "ratio": r.ratio_vs_baseline,
                "ci95": [
                    r.vs_baseline.ci95_low if r.vs_baseline is not None else None,
                    r.vs_baseline.ci95_high if r.vs_baseline is not None else None,
                ],
                "accuracy": r.accuracy,
                "perplexity_ratio": r.quality.perplexity_ratio,
            }
            for r in result.measured
        ],
    }


def _contrasts(recipe: Any, pairs: int, kv: bool, only: str | None) -> list[dict[str, Any]]:
    from compresslab.bench import Runtime, VariantBench
    from compresslab.compress import Step, VariantSpec
    from compresslab.tasks import load_task

    task = load_task(recipe.task)
    bench = VariantBench(recipe=recipe, task=task)
    base_acc, _ = bench.accuracy(bench.reference)
    rows = []
    for label, steps, runtime in CONTRASTS:
        if (not kv and "kv_cache" in runtime) or (only and only not in label):
            continue
        stamp = run_stamp()
        spec = VariantSpec(tuple(Step(m, p) for m, p in steps))
        model = bench.build(spec)
        quality = task.quality(model)
        acc, acc_ci = bench.accuracy(model)
        log(f"{label}: perplexity x{quality['perplexity_ratio']:.3f}, accuracy {acc:.3f}")
        paired = bench.measure_paired(model, runtime=Runtime(**runtime), pairs=pairs)
        vs = paired.vs_reference()
        log(f"{label}: {vs.ratio:.3f} [{vs.ci95_low:.3f}, {vs.ci95_high:.3f}] per token")
        rows.append(
            {
                "label": label,
                "variant": spec.label() + Runtime(**runtime).label(),
                "ratio": vs.ratio,
                "ci95": [vs.ci95_low, vs.ci95_high],
                "pairs": vs.pairs,
                "j_per_token": paired.candidate.energy_j_per_inference,
                "baseline_j_per_token": paired.reference.energy_j_per_inference,
                "provenance": str(paired.candidate.provenance),
                "contended": paired.candidate.contended or paired.reference.contended,
                "perplexity_ratio": quality["perplexity_ratio"],
                "perplexity_ratio_ci95": quality["perplexity_ratio_ci95"],
                "accuracy": acc,
                "accuracy_ci95": list(acc_ci),
                "baseline_accuracy": base_acc,
                "run": close_stamp(stamp),
            }
        )
        del model
    return rows


def _markdown(data: dict[str, Any]) -> str:
    best, run = data["best"], data["search_run"]
    lines = ["## Generative flagship: SmolLM2-135M-Instruct, energy per generated token", ""]
    if best.get("variant"):
        lo, hi = best["ci95"]
        ci = f"95% CI {lo:.3f} to {hi:.3f}, {best['pairs']} pairs" if lo is not None else "search"
        met = best["saving_x"] >= TARGET
        lines += [
            f"- Best within 1 accuracy point and +5% perplexity: **{best['variant']}**, "
            f"**{best['saving_x']:.2f}x** less energy per generated token (ratio "
            f"{best['ratio']:.3f}, {ci}; the search measured {best['search_ratio']:.3f}); "
            f"accuracy {best['accuracy']:.3f} (baseline {best['baseline_accuracy']:.3f}), "
            f"perplexity x{best['perplexity_ratio']:.3f}. Target {TARGET:g}x: {verdict(met)}.",
        ]
    else:
        lines.append("- No variant within the tolerance used less energy than the baseline.")
    lines.append(
        f"- The search ({run['how']}) took {run['duration_s'] / 60:.1f} min; load average "
        f"{run['load_start'][0]:.1f} at the start, {run['load_end'][0]:.1f} at the end."
    )
    rows = []
    for c in data["contrasts"]:
        lo, hi = c["ci95"]
        rows.append(
            [
                c["label"],
                f"{c['ratio']:.2f}x [{lo:.2f}, {hi:.2f}] ({c['pairs']} pairs)",
                "saves" if hi < 1 else ("costs" if lo > 1 else "within noise"),
                f"{(c['perplexity_ratio'] - 1) * 100:+.1f}%",
                f"{c['accuracy']:.3f} (baseline {c['baseline_accuracy']:.3f})",
                f"{c['run']['load_start'][0]:.1f} / {c['run']['load_end'][0]:.1f}",
            ]
        )
    if rows:
        lines += [
            "",
            "At the baseline's runtime (one request at a time, one thread), paired with the "
            "float baseline, whatever the quality:",
            "",
            md_table(
                [
                    "variant",
                    "energy per token vs fp32 (95% CI)",
                    "verdict",
                    "perplexity",
                    "accuracy",
                    "load start / end",
                ],
                rows,
            ),
        ]
    lines += ["", f"Command: `{COMMAND}`; provenance: {data.get('provenance', '-')}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the markdown snippet."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reuse-reports", type=Path, default=None)
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--no-kv", action="store_true", help="skip the KV-cache-off contrast")
    parser.add_argument("--no-contrasts", action="store_true")
    parser.add_argument("--only", default=None, help="contrasts whose label contains this")
    parser.add_argument("--out", type=Path, default=OUT / "llm", help="where results go")
    args = parser.parse_args(argv)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    recipe, result, run = _search(out, args.reuse_reports)
    data: dict[str, Any] = {
        "search_run": run,
        "best": _best(result),
        "machine": machine_info(),
        "command": COMMAND + " " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    base = result.baseline
    data["provenance"] = base.provenance if base is not None else "-"
    (out / "results.json").write_text(json.dumps(data, indent=2, default=str))
    data["contrasts"] = (
        [] if args.no_contrasts else _contrasts(recipe, args.pairs, not args.no_kv, args.only)
    )
    data["duration_s"] = time.perf_counter() - t0
    (out / "results.json").write_text(json.dumps(data, indent=2, default=str))
    snippet = _markdown(data)
    (out / "RESULTS-llm.md").write_text(snippet)
    print(snippet)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
