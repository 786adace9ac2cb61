"""How often the energy gate passes an unchanged model, and fails a slower one (issue 18).

From the repository root::

    .venv/bin/python benchmarks/gate_rates.py              # 20 + 20 gate runs, ~15 min on 2 cores
    .venv/bin/python benchmarks/gate_rates.py --runs 5     # a shorter look

The model is the digits CNN of ``recipes/digits.yaml``, gated with that recipe's energy
protocol (batch 256, 0.3 s warm-up, 0.5 s windows) and the gate's defaults (6 interleaved pairs,
one re-measure with 12 when inconclusive, limit +5%, inconclusive passes). Its task comes
from an entrypoint written to a temporary folder, so that the slower model is a *code* change:
its ``forward`` also runs the convolutional part again, through functional calls on the same
weights, on every second row of the batch (adding a zero times its mean to the output: the
same outputs, about 1.5x the work per batch, no new layer, so the modeled figure does not
move). Its true ratio is measured too.

1. ``update_baseline`` (``compresslab baseline``) writes the baseline and its program (the
   unchanged model).
2. The gate runs ``--runs`` times on the unchanged model and ``--runs`` times on the slower
   one, alternating, in this process through :func:`compresslab.api.energy_gate` (what
   ``compresslab check`` calls; Python's start-up is left out), while ``--load`` busy processes
   stand in for other jobs. Each run's outcome, ratio, interval, pairs, seconds and load
   average are recorded.
3. The slower model's true ratio is measured once with many pairs, for reference.
4. The eager model against its own ``torch.export`` program (the evidence for measuring
   programs on both sides), unless ``--skip-path``.

Writes ``benchmarks/gate_rates.json`` and prints a markdown snippet for RESULTS.md.

On a machine where other compresslab jobs measure, give this run a lock folder of its own
(``COMPRESSLAB_LOCK_DIR=/tmp/gate-rates-lock``): with the shared one every gate run waits for
their windows (the host lock, as it should on one host), whereas a CI runner's neighbours share
no lock with it; then they are simply other jobs running.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import compresslab  # before torch: it sets OpenMP's passive wait

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent

TASK_MODULE = '''
"""The digits task, optionally with a forward that does half again the work (no new layer)."""

import torch
import torch.nn.functional as F
from torch import nn

from compresslab.tasks.digits import digits_task


def _again(m, x):
    f = m.features
    h = F.conv2d(x, f[0].weight, f[0].bias, padding=1)
    h = F.relu(F.batch_norm(h, f[1].running_mean, f[1].running_var, f[1].weight, f[1].bias,
                            False, 0.0, f[1].eps))
    h = F.conv2d(h, f[3].weight, f[3].bias, padding=1)
    h = F.relu(F.batch_norm(h, f[4].running_mean, f[4].running_var, f[4].weight, f[4].bias,
                            False, 0.0, f[4].eps))
    return F.max_pool2d(h, 2)


class Slower(nn.Module):
    def __init__(self, base):
        super().__init__()
        self.base = base

    def forward(self, x):
        y = self.base(x)
        return y + 0.0 * _again(self.base, x[::2]).mean()


def build(options):
    task = digits_task({})
    if options.get("slow"):
        from dataclasses import replace
        return replace(task, model=Slower(task.model).eval())
    return task
'''


def _spin(stop: Any) -> None:
    x = 0
    while not stop.is_set():
        for _ in range(100000):
            x += 1


def _load() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def _recipe(folder: Path, *, slow: bool, args: argparse.Namespace) -> Path:
    import yaml

    digits = yaml.safe_load((ROOT / "recipes" / "digits.yaml").read_text(encoding="utf-8"))
    energy = {**digits["energy"], "sampler": "estimate"}
    if args.window_s is not None:
        energy["window_s"] = args.window_s
    recipe = {
        "name": "gate-rates",
        "task": {"entrypoint": "gate_rates_task:build", "options": {"slow": slow}},
        "compression": [{"method": "dynamic_int8"}],
        "energy": energy,
        "check": {"pairs": args.pairs, "retry_pairs": args.retry_pairs},
        "output": str(folder / "reports"),
    }
    path = folder / ("slow.yaml" if slow else "same.yaml")
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


def _interval(paired: Any) -> dict[str, Any]:
    from compresslab.check.verdict import ratio_interval

    iv = ratio_interval(
        paired.candidate.window_j_per_inference, paired.reference.window_j_per_inference, alpha=0.05
    )
    return {"ratio": iv.ratio, "low": iv.low, "high": iv.high, "pairs": iv.pairs}


def _true_ratio(folder: Path, pairs: int) -> dict[str, Any]:
    """The slower model against the unchanged one, many pairs: eager, and as programs."""
    from compresslab.api import load_recipe
    from compresslab.bench import VariantBench
    from compresslab.check import program
    from compresslab.compress import VariantSpec
    from compresslab.tasks import load_task

    recipe = load_recipe(folder / "slow.yaml")
    base = load_task(load_recipe(folder / "same.yaml").task).model.eval()
    bench = VariantBench(recipe=recipe, task=load_task(recipe.task))
    slow = bench.build(VariantSpec())
    batch = bench.inference_batch()
    progs = [program.as_module(program.capture(m, batch), batch.shape[0]) for m in (base, slow)]
    return {
        "eager": _interval(bench.measure_paired(slow, reference=base, pairs=pairs)),
        "program": _interval(bench.measure_paired(progs[1], reference=progs[0], pairs=pairs)),
    }


def _eager_vs_program(folder: Path, pairs: int, repeats: int) -> list[dict[str, Any]]:
    """The unchanged model eager against its torch.export program, each side in each role.

    Returns program / eager ratios with their 95% intervals (a reversed measurement is
    inverted), alternating which side is the protocol's reference.
    """
    from compresslab.api import load_recipe
    from compresslab.bench import VariantBench
    from compresslab.check import program
    from compresslab.tasks import load_task

    recipe = load_recipe(folder / "same.yaml")
    bench = VariantBench(recipe=recipe, task=load_task(recipe.task))
    model = bench.task.model.eval()
    batch = bench.inference_batch()
    prog = program.as_module(program.capture(model, batch, kinds=("export",)), batch.shape[0])
    out = []
    for i in range(repeats):
        program_first = i % 2 == 1
        ref, cand = (prog, model) if program_first else (model, prog)
        iv = _interval(bench.measure_paired(cand, reference=ref, pairs=pairs))
        if program_first:  # measured eager / program: invert to program / eager
            iv = {**iv, "ratio": 1 / iv["ratio"], "low": 1 / iv["high"], "high": 1 / iv["low"]}
        iv["program_is_reference"] = program_first
        out.append(iv)
        print(f"  program / eager: {_shown(iv)}", flush=True)
    return out


def _run(recipe: Path, baseline: Path) -> dict[str, Any]:
    from compresslab.api import energy_gate
    from compresslab.check import GateRequest

    load0, t0 = _load(), time.perf_counter()
    verdict = energy_gate(GateRequest(recipe=recipe, baseline=baseline))
    m = verdict.energy.decisive
    assert m is not None
    return {
        "outcome": verdict.outcome,
        "exit_code": verdict.exit_code,
        "ratio": m.ratio,
        "low": m.low,
        "high": m.high,
        "pairs": m.pairs,
        "remeasured": len(verdict.energy.measurements) > 1,
        "first_outcome": verdict.energy.measurements[0].outcome,
        "modeled_passed": bool(verdict.modeled and verdict.modeled.passed),
        "seconds": time.perf_counter() - t0,
        "load_1m": (load0 + _load()) / 2,
    }


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(runs)
    count = {
        k: sum(r["outcome"] == k for r in runs) for k in ("pass", "inconclusive", "regression")
    }
    return {
        "runs": n,
        "exit_0": sum(r["exit_code"] == 0 for r in runs),
        "exit_1": sum(r["exit_code"] == 1 for r in runs),
        **count,
        "remeasured": sum(r["remeasured"] for r in runs),
        "median_seconds": sorted(r["seconds"] for r in runs)[n // 2],
        "ratio_min": min(r["ratio"] for r in runs),
        "ratio_max": max(r["ratio"] for r in runs),
    }


def _shown(iv: dict[str, Any]) -> str:
    return f"{iv['ratio']:.2f}x (95% {iv['low']:.2f} to {iv['high']:.2f})"


def _markdown(res: dict[str, Any]) -> str:
    same, slow = res["unchanged"]["summary"], res["slower"]["summary"]
    true = res["slower_true_ratio"]
    loads = res["load_1m"]
    lines = [
        "### The energy gate's false alarms and detections (issue 18)",
        "",
        f"`{res['command']}` ({res['date']}; {res['machine']}; estimated tier, no RAPL or GPU). "
        f"The digits CNN gated {same['runs']} times unchanged and {slow['runs']} times with a "
        f"forward that also reruns the convolutions through functional calls on every second row "
        f"(true ratio, {true['program']['pairs']} pairs each after the runs: "
        f"{_shown(true['program'])} as programs, as the gate measures it; "
        f"{_shown(true['eager'])} eager; no new layer, modeled figure unchanged), "
        f"alternating, against "
        f"a baseline program made by `check --update`. Gate: digits protocol "
        f"(batch 256, {res['protocol']['window_s']} s windows), {res['protocol']['pairs']} "
        f"interleaved pairs, one re-measure with {res['protocol']['retry_pairs']} when "
        f"inconclusive, limit +5%, inconclusive passes. Other jobs: {res['busy_processes']} "
        f"busy process(es) of this benchmark besides the machine's own; 1-minute load average "
        f"{loads['min']:.1f} to {loads['max']:.1f} (mean {loads['mean']:.1f}) on "
        f"{res['cpus']} CPUs; torch's default {res['torch_threads']} thread(s), as a CLI run.",
        "",
        "| model | runs | exit 0 | exit 1 | pass | inconclusive (passes) | regression | "
        "re-measured | ratio seen | s per run (median) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for label, s in (("unchanged", same), (f"{true['program']['ratio']:.2f}x slower", slow)):
        lines.append(
            f"| {label} | {s['runs']} | {s['exit_0']} | {s['exit_1']} | {s['pass']} | "
            f"{s['inconclusive']} | {s['regression']} | {s['remeasured']} | "
            f"{s['ratio_min']:.2f} to {s['ratio_max']:.2f} | {s['median_seconds']:.0f} |"
        )
    target_same = same["exit_0"] >= 0.95 * same["runs"]
    target_slow = slow["exit_1"] >= 0.95 * slow["runs"]
    lines += [
        "",
        f"Targets: the unchanged model passes at least 19 in 20 "
        f"({'met' if target_same else 'missed'}: {same['exit_0']} of {same['runs']}); the "
        f"slower one fails at least 19 in 20 ({'met' if target_slow else 'missed'}: "
        f"{slow['exit_1']} of {slow['runs']}). With `check.on_inconclusive: fail` the unchanged "
        f"model would have failed {same['inconclusive'] + same['regression']} of {same['runs']}.",
    ]
    if res.get("eager_vs_program"):
        evp = res["eager_vs_program"]
        shown = "; ".join(f"{e['ratio']:.3f} ({e['low']:.3f} to {e['high']:.3f})" for e in evp)
        lines += [
            "",
            f"The unchanged model's `torch.export` program against the model run eagerly "
            f"(program / eager, {evp[0]['pairs']} pairs each, alternately as the protocol's "
            f"reference): {shown}. The gate measures programs on both sides whenever the "
            "reference is a program, so it does not depend on this path difference.",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; write benchmarks/gate_rates.json; print the markdown snippet."""
    p = argparse.ArgumentParser(prog="benchmarks/gate_rates.py", description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=20, help="gate runs per model (default 20)")
    p.add_argument("--pairs", type=int, default=6, help="check.pairs (default 6)")
    p.add_argument("--retry-pairs", type=int, default=12, help="check.retry_pairs (default 12)")
    p.add_argument("--window-s", type=float, default=None, help="energy.window_s (digits: 0.5)")
    p.add_argument("--load", type=int, default=1, help="busy processes for other jobs (1)")
    p.add_argument("--true-pairs", type=int, default=20, help="pairs of the true ratio (20)")
    p.add_argument("--skip-path", action="store_true", help="skip eager vs program")
    p.add_argument("--out", type=Path, default=BENCH / "gate_rates.json")
    args = p.parse_args(argv)
    command = "python benchmarks/gate_rates.py" + (" " + " ".join(argv or sys.argv[1:])).rstrip()
    if os.environ.get("COMPRESSLAB_LOCK_DIR"):
        command = f"COMPRESSLAB_LOCK_DIR={os.environ['COMPRESSLAB_LOCK_DIR']} {command}"

    import torch

    folder = Path(tempfile.mkdtemp(prefix="gate-rates-"))
    (folder / "gate_rates_task.py").write_text(TASK_MODULE, encoding="utf-8")
    sys.path.insert(0, str(folder))
    same, slow = _recipe(folder, slow=False, args=args), _recipe(folder, slow=True, args=args)
    baseline = folder / "baseline.json"

    from compresslab.api import load_recipe, update_baseline
    from compresslab.check import BaselineRequest

    update_baseline(BaselineRequest(recipe=same, baseline=baseline))
    print(f"baseline and its program written in {folder}", flush=True)

    stop = mp.Event()
    spinners = [mp.Process(target=_spin, args=(stop,), daemon=True) for _ in range(args.load)]
    for s in spinners:
        s.start()
    runs: dict[str, list[dict[str, Any]]] = {"unchanged": [], "slower": []}
    loads: list[float] = []
    try:
        for i in range(args.runs):
            for label, recipe in (("unchanged", same), ("slower", slow)):
                r = _run(recipe, baseline)
                runs[label].append(r)
                loads.append(r["load_1m"])
                print(
                    f"{i + 1:2d} {label:9s} {r['outcome']:12s} exit {r['exit_code']} "
                    f"{r['ratio']:.3f} [{r['low']:.3f}, {r['high']:.3f}] {r['pairs']} pairs "
                    f"{r['seconds']:.0f} s load {r['load_1m']:.1f}",
                    flush=True,
                )
        true = _true_ratio(folder, args.true_pairs)
        print(f"slower model's true ratio: {true}", flush=True)
        path = [] if args.skip_path else _eager_vs_program(folder, 12, 6)
    finally:
        stop.set()
        for s in spinners:
            s.join(timeout=5)
        shutil.rmtree(folder, ignore_errors=True)
    protocol = load_recipe(same).energy
    res: dict[str, Any] = {
        "command": command,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
        f", torch {torch.__version__}, compresslab {compresslab.__version__}",
        "cpus": os.cpu_count(),
        "busy_processes": args.load,
        "lock_dir": os.environ.get("COMPRESSLAB_LOCK_DIR") or "(default: the temp dir)",
        "torch_threads": torch.get_num_threads(),
        "protocol": {
            "batch_size": protocol.batch_size,
            "warmup_s": protocol.warmup_s,
            "window_s": protocol.window_s,
            "pairs": args.pairs,
            "retry_pairs": args.retry_pairs,
            "max_increase": 0.05,
            "on_inconclusive": "pass",
        },
        "load_1m": {"min": min(loads), "max": max(loads), "mean": sum(loads) / len(loads)},
        "unchanged": {"summary": _summary(runs["unchanged"]), "runs": runs["unchanged"]},
        "slower": {"summary": _summary(runs["slower"]), "runs": runs["slower"]},
        "slower_true_ratio": true,
        "eager_vs_program": path,
    }
    res["markdown"] = _markdown(res)
    args.out.write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    print()
    print(res["markdown"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
