"""Energy per generated token of the flagship's model on a GPU: fp16, bf16, NF4, LLM.int8().

The question of issue 19 where public reports raised it, on a GPU: do bitsandbytes' NF4 and
LLM.int8() save or cost energy per generated token on a model of this size (bitsandbytes issue
1851: +26-29% for NF4 and +17-147% for LLM.int8() against fp16 on models of 1.5 B parameters
or less)? The flagship recipe (``recipes/smollm2.yaml``) is run on ``--device`` through the
lab's own path: each variant built with the lab's methods, placed on the GPU with its prompts,
evaluated (accuracy, perplexity), and measured with the NVML sampler and the paired protocol
against a reference measured in the same span of time (ABBA).

``--model DIR`` uses a Hugging Face folder instead of the bundled SmolLM2 (the device check
uses a SmolLM2-shaped model with random weights where the 93 MB checkpoint cannot be copied:
energy and latency depend on the shapes and formats, not the values; quality then means
nothing and is reported as such).

Run from the repository root::

    .venv/bin/python benchmarks/gpu_llm.py --out gpu_llm.json           # NVIDIA GPU
    .venv/bin/python benchmarks/gpu_llm.py --device cpu --quick         # exercise the script
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout without an install
    sys.path.insert(0, str(REPO))

_T0 = time.perf_counter()

#: Variants by label: the lab's compression steps (the runtime's batch size is the plan's).
VARIANTS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "fp32": [],
    "fp16": [("fp16", {})],
    "bf16": [("bf16", {})],
    "llm_int8": [("bnb_int8", {"threshold": 6.0})],
    "nf4": [("bnb_4bit", {"quant_type": "nf4"})],
    "nf4_bf16": [("bnb_4bit", {"quant_type": "nf4", "compute_dtype": "bfloat16"})],
}
#: (reference, candidate, batch size): candidate measured paired with reference.
PLAN: list[tuple[str, str, int]] = [
    ("fp32", "fp16", 1),
    ("fp32", "bf16", 1),
    ("fp32", "nf4", 1),
    ("fp32", "llm_int8", 1),
    ("bf16", "nf4_bf16", 1),
    ("fp16", "llm_int8", 1),
    ("bf16", "nf4_bf16", 16),
    ("fp16", "llm_int8", 16),
    ("fp16", "fp16", 16),  # batching alone: fp16 at 16 requests against fp16 at one
]


def log(message: str) -> None:
    """One progress line on stderr, with the seconds since the start."""
    print(f"[{time.perf_counter() - _T0:6.1f} s] {message}", file=sys.stderr, flush=True)


def flagship_recipe(args: argparse.Namespace) -> Any:
    """The flagship recipe, moved to ``args.device`` (and ``args.model`` when given)."""
    from compresslab.api import load_recipe

    data = load_recipe(REPO / "recipes" / "smollm2.yaml").model_dump(mode="json", exclude_none=True)
    options = dict(data["task"].get("options") or {})
    if args.model is not None:
        data["task"]["name"] = "causal_lm"
        options["path"] = str(args.model)
    if args.wordnet is not None:
        options["wordnet_path"] = str(args.wordnet)
    if args.quick:
        options |= {"questions": 20, "perplexity_texts": 8, "answer_prompts": 1}
    data["task"]["options"] = options
    data["name"] = f"smollm2-{args.device.replace(':', '')}"
    data["energy"] |= {
        "device": args.device,
        "sampler": args.sampler,
        "warmup_s": 0.5,
        "window_s": 0.5 if args.quick else args.window,
        "idle_s": 0.5 if args.quick else 1.0,
        "min_windows": 2 if args.quick else 3,
        "max_windows": 3 if args.quick else 5,
    }
    data["output"] = str(args.scratch)
    return load_recipe(data)


def dump(args: argparse.Namespace, bench: Any, task: Any, rows: list, quality: dict) -> None:
    """Write the JSON of what has been measured so far."""
    import torch

    import compresslab

    random_weights = args.model is not None and "random" in args.model.name
    report = {
        "compresslab": compresslab.__version__,
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "device": args.device,
        "model": str(args.model or "bundled SmolLM2-135M-Instruct"),
        "weights": "random (seeded): quality figures mean nothing" if random_weights else "real",
        "sampler": bench.selection.explain(),
        "new_tokens": task.new_tokens,
        "pairs": rows,
        "quality": quality,
        "seconds": round(time.perf_counter() - _T0, 1),
    }
    text = json.dumps(report, indent=2, default=str)
    if args.out is None:
        print(text)
    else:
        args.out.write_text(text + "\n")
        log(f"wrote {args.out}")


def main(argv: list[str] | None = None) -> int:
    """Measure every pair of :data:`PLAN`; write the JSON; exit 1 if a pair failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--sampler", default="auto", help="energy sampler (auto: NVML on a GPU)")
    parser.add_argument("--model", type=Path, default=None, help="a Hugging Face folder")
    parser.add_argument("--wordnet", type=Path, default=None, help="WordNet's data.noun")
    parser.add_argument("--pairs", type=int, default=4, help="ABBA pairs per comparison")
    parser.add_argument("--quick", action="store_true", help="short windows, first 3 pairs")
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/compresslab-gpu-llm"))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--plan", default=None, help="ref:cand:batch,... (default: PLAN)")
    parser.add_argument("--window", type=float, default=1.0, help="window seconds")
    args = parser.parse_args(argv)

    from compresslab.bench import Runtime, VariantBench
    from compresslab.compress import Step, VariantSpec, notes_of
    from compresslab.tasks import load_task

    recipe = flagship_recipe(args)
    log(f"loading {recipe.task.name} ({args.model or 'bundled SmolLM2'})")
    task = load_task(recipe.task)
    bench = VariantBench(recipe=recipe, task=task)
    log(f"sampler: {bench.selection.explain()}")
    built: dict[str, Any] = {}
    quality: dict[str, Any] = {}

    def model_of(label: str) -> Any:
        if label not in built:
            spec = VariantSpec(tuple(Step(m, p) for m, p in VARIANTS[label]))
            model = bench.place(bench.build(spec))
            acc, acc_ci = bench.accuracy(model)
            quality[label] = {
                "accuracy": acc,
                "accuracy_ci95": list(acc_ci),
                **task.quality(model),
                "answers": task.answers(model),
                "notes": notes_of(model),
            }
            log(f"{label}: accuracy {acc:.3f}, perplexity {quality[label]['perplexity']:.1f}")
            built[label] = model
        return built[label]

    rows: list[dict[str, Any]] = []
    plan = PLAN[:3] if args.quick else PLAN
    if args.plan:
        plan = [(r, c, int(b)) for r, c, b in (x.split(":") for x in args.plan.split(","))]
    for ref, cand, batch in plan:
        row: dict[str, Any] = {
            "reference": f"{ref} @ batch 1",
            "candidate": f"{cand} @ batch {batch}",
        }
        try:
            reference, candidate = model_of(ref), model_of(cand)
            paired = bench.measure_paired(
                candidate, runtime=Runtime(batch_size=batch), pairs=args.pairs, reference=reference
            )
            vs = paired.vs_reference()
            row |= {
                "ratio_per_token": vs.ratio,
                "ci95": [vs.ci95_low, vs.ci95_high],
                "pairs": vs.pairs,
                "candidate_j_per_token": paired.candidate.energy_j_per_inference,
                "reference_j_per_token": paired.reference.energy_j_per_inference,
                "candidate_ci95_j": paired.candidate.ci95_j_per_inference,
                "provenance": str(paired.candidate.provenance),
                "components": paired.candidate.component_provenance,
                "idle_power_w": paired.candidate.idle_power_w,
                "candidate_s_per_call": paired.candidate.latency_s_per_batch,
                "reference_s_per_call": paired.reference.latency_s_per_batch,
                "candidate_tokens_per_s": paired.candidate.throughput_per_s,
                "reference_tokens_per_s": paired.reference.throughput_per_s,
            }
            log(
                f"{row['candidate']} vs {row['reference']}: x{vs.ratio:.3f} "
                f"[{vs.ci95_low:.3f}, {vs.ci95_high:.3f}] per token "
                f"({paired.candidate.energy_j_per_inference:.4g} J/token, {row['provenance']})"
            )
        except Exception as e:  # one failing pair is reported, the others still run
            import traceback

            row["error"] = f"{type(e).__name__}: {e}"
            row["traceback"] = traceback.format_exc(limit=6)
            log(f"{row['candidate']} vs {row['reference']}: FAILED {row['error']}")
        rows.append(row)
        dump(args, bench, task, rows, quality)  # after every pair: kept if the run is cut short
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
