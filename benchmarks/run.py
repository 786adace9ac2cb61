"""Run compresslab's benchmarks and write ``benchmarks/RESULTS.md`` and ``results.json``.

From the repository root::

    make bench                                   # every figure (about 30 minutes on 2 cores)
    .venv/bin/python benchmarks/run.py --only overhead,repeatability
    .venv/bin/python benchmarks/run.py --only outcome --reuse-reports
    .venv/bin/python benchmarks/run.py --only trust     # figure 7 (~6 min alone, 1.5 after 4)
    .venv/bin/python benchmarks/run.py --only accuracy  # figure 9 (~15 min)
    .venv/bin/python benchmarks/run.py --quick   # smoke run (meaningless numbers, written
                                                 # under benchmarks/out/quick/)

Figures (issue 10), by ``--only`` key:

1. ``overhead``: wall time of an energy-measured inference loop against a bare torch loop.
2. ``repeatability``: CV of energy per inference over repeated measurements, per tier.
3. ``search``: hypervolume reached by the default sampler vs random vs the exhaustive grid.
4. ``outcome``: best energy saving within 1 accuracy point for each shipped recipe.
5. ``cost``: the energy of a default digits search against its best variant's saving.
6. ``prediction``: Spearman correlation of the modeled and the estimated energy.

Figure 7 (issue 14), ``trust``: repeatability and coverage of paired ratios and absolute
figures, a quiet against a busy machine, and search against confirmed ratios.

Figure 8 (issue 20), ``frugal``: today's default digits search against the one before issue
20 (energy, frontier hypervolume), the calibration's held-out ranking, the cost per part, and
the MiniLM flagship's break-even (``benchmarks/frugal.py``; about 20 minutes).

Figure 9 (issue 28), ``accuracy``: the paired, staged accuracy claims of each shipped recipe's
representative variants, decided under 20 seeded orders of the evaluation pool (agreement,
paired against unpaired interval widths, examples used) and on the untouched confirmation
split (``benchmarks/accuracy_claims.py``; about 15 minutes).

A subset run keeps the other figures of the previous ``results.json`` (each figure says when
and under what load it ran). The benchmarks are not part of the test run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from benchlib import (
    BENCH,
    COMMAND,
    OUT,
    Figure,
    Settings,
    close_stamp,
    log,
    machine_info,
    md_table,
    run_stamp,
    verdict,
)

KEYS = (
    "overhead",
    "repeatability",
    "search",
    "outcome",
    "cost",
    "prediction",
    "trust",
    "frugal",
    "accuracy",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(
        prog="benchmarks/run.py",
        description="Run compresslab's benchmarks; write benchmarks/RESULTS.md and results.json.",
    )
    p.add_argument(
        "--only",
        default="",
        help=f"comma-separated figures to run (keys or numbers 1-{len(KEYS)}): {', '.join(KEYS)}",
    )
    p.add_argument(
        "--reuse-reports",
        action="store_true",
        help="figures 4-7 read reports/<name>/trials.csv (and study.db) of earlier "
        "`compresslab search` runs instead of searching (a missing one is searched)",
    )
    p.add_argument(
        "--trials",
        default="",
        help="search budgets of figure 4 (default digits=30,fashion-mnist=8,minilm-wordnet=6)",
    )
    p.add_argument("--seeds", type=int, default=10, help="seeds per sampler in figure 3 (10)")
    p.add_argument(
        "--render-only",
        action="store_true",
        help="rewrite RESULTS.md from results.json (and benchmarks/NOTES.md) without running",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run with tiny budgets; writes under benchmarks/out/quick/",
    )
    return p.parse_args(argv)


def _wanted(only: str) -> list[str]:
    if not only.strip():
        return list(KEYS)
    out = []
    for item in only.split(","):
        item = item.strip()
        if not item:
            continue
        key = KEYS[int(item) - 1] if item.isdigit() and 1 <= int(item) <= len(KEYS) else item
        if key not in KEYS:
            raise SystemExit(f"error: unknown figure '{item}' in --only: use {', '.join(KEYS)}")
        out.append(key)
    return [k for k in KEYS if k in out]


def _trials(text: str) -> dict[str, int]:
    out = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, _, n = item.partition("=")
        if not n.isdigit() or int(n) < 1:
            raise SystemExit(f"error: --trials expects name=N with N >= 1, got '{item}'")
        out[name.strip()] = int(n)
    return out


def render(figures: dict[str, Figure], machine: dict[str, Any], meta: dict[str, Any]) -> str:
    """RESULTS.md from the figures and the machine they ran on."""
    fp = machine["fingerprint"]
    ordered = sorted(figures.values(), key=lambda f: f.number)
    summary = [
        [
            f.number,
            f.title,
            f.target or "(no target)",
            f.headline,
            verdict(f.met),
        ]
        for f in ordered
    ]
    samplers = "; ".join(
        f"`{n}` available" if s["available"] else f"`{n}` not available ({_short(s['reason'])})"
        for n, s in machine["samplers"].items()
    )
    parts = [
        "# compresslab benchmarks",
        "Written by `make bench` (`" + COMMAND + "`). Real numbers from the machine below; "
        "a missed target is reported, with the reason, not hidden. Raw numbers: "
        "[results.json](results.json).",
        f"Last run: {meta['finished']} UTC, command `{meta['command']}`, "
        f"{meta['duration_s'] / 60:.1f} minutes"
        + (f" (figures run: {', '.join(meta['ran'])})" if meta["ran"] != list(KEYS) else "")
        + ".",
        "## Summary",
        md_table(["#", "figure", "target", "result", "verdict"], summary),
        "## Machine",
        md_table(
            ["", ""],
            [
                ["host", fp["host"]],
                ["CPU", f"{fp['cpu_model']}, {fp['logical_cpus']} logical CPUs"],
                ["CPU flags (of interest)", " ".join(machine["cpu_flags_of_interest"]) or "-"],
                ["bf16 arithmetic", _bf16(machine)],
                ["platform", fp["platform"]],
                ["python", fp["python"]],
                ["torch", f"{machine['torch']} ({machine['torch_threads']} intra-op threads)"],
                [
                    "versions",
                    ", ".join(f"{k} {v}" for k, v in machine["versions"].items()),
                ],
                ["energy samplers", samplers],
                [
                    "load average (1/5/15 min)",
                    f"start {_load(meta['load_start'])}, end {_load(meta['load_end'])}",
                ],
            ],
        ),
        "The machine is shared: other jobs ran beside the benchmark, so timings vary "
        "(±25% run to run). Compared arms are interleaved and summarized by medians with "
        "their spread; the full CPU flag list is in results.json.",
    ]
    for f in ordered:
        run = f.run
        parts += [
            f"## {f.number}. {f.title}",
            f"**Target:** {f.target or 'none (information)'}. **Verdict:** {verdict(f.met)}. "
            f"**Result:** {f.headline}.",
            f.body,
            f"Reproduce: `{f.command}`. Ran {run.get('started', '?')} UTC for "
            f"{run.get('duration_s', 0):.0f} s, load average {_load(run.get('load_start'))} → "
            f"{_load(run.get('load_end'))}.",
        ]
    notes = BENCH / "NOTES.md"
    if notes.is_file():
        parts.append(notes.read_text().strip())
    return "\n\n".join(parts) + "\n"


def _bf16(machine: dict[str, Any]) -> str:
    """Whether the CPU multiplies bf16 natively (oneDNN may still run bf16 by conversion)."""
    native = {"avx512_bf16", "amx_bf16"} & set(machine["cpu_flags"])
    if native:
        return f"native ({', '.join(sorted(native))})"
    return "not native (no avx512_bf16 or amx_bf16): bf16 runs by conversion to fp32" + (
        ", oneDNN bf16 kernels emulated" if machine.get("mkldnn_bf16") else ""
    )


def _short(reason: str) -> str:
    """The first clause of a sampler's reason (the full text is in results.json)."""
    return reason.split(":")[0].split(";")[0].strip()


def _load(values: list[float] | None) -> str:
    return "/".join(f"{v:.2f}" for v in values) if values else "?"


def main(argv: list[str] | None = None) -> int:
    """Run the wanted figures and write the results."""
    args = parse_args(argv)
    wanted = _wanted(args.only)
    out = OUT / "quick" if args.quick else OUT
    out.mkdir(parents=True, exist_ok=True)
    # A lock of our own: other measurement processes on this shared machine would otherwise
    # make the harness wait for the host lock, which is contention, not harness cost.
    (out / "lock").mkdir(exist_ok=True)
    os.environ.setdefault("COMPRESSLAB_LOCK_DIR", str(out / "lock"))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Optuna's loggers propagate their INFO records (compresslab turns propagation on).
    for handler in logging.getLogger().handlers:
        handler.setLevel(logging.WARNING)
    settings = Settings(
        quick=args.quick,
        reuse_reports=args.reuse_reports,
        trials=_trials(args.trials),
        seeds=args.seeds,
        out=out,
    )
    results_dir = out if args.quick else BENCH
    json_path = results_dir / "results.json"
    previous: dict[str, Figure] = {}
    if json_path.is_file() and (wanted != list(KEYS) or args.render_only):
        stored = json.loads(json_path.read_text())
        previous = {k: Figure.from_dict(v) for k, v in stored.get("figures", {}).items()}

    if args.render_only:
        stored = json.loads(json_path.read_text())
        figures = {k: Figure.from_dict(v) for k, v in stored["figures"].items()}
        _atomic_write(
            results_dir / "RESULTS.md", render(figures, stored["machine"], stored["meta"])
        )
        log(f"rewrote {results_dir / 'RESULTS.md'} from {json_path}")
        return 0

    started = time.perf_counter()
    load_start = list(os.getloadavg())
    machine = machine_info()
    log(f"running {', '.join(wanted)} on {machine['fingerprint']['cpu_model']}")
    figures: dict[str, Figure] = dict(previous)

    def record(fig: Figure, stamp: dict[str, Any]) -> None:
        fig.run = close_stamp(stamp) | {"machine": machine["fingerprint"]}
        figures[fig.key] = fig
        log(f"figure {fig.number} ({fig.key}): {fig.headline} [{verdict(fig.met)}]")

    if "overhead" in wanted:
        import overhead

        stamp = run_stamp()
        record(overhead.run(settings), stamp)
    if "repeatability" in wanted:
        import repeatability

        stamp = run_stamp()
        record(repeatability.run(settings), stamp)
    if "search" in wanted:
        import search_efficiency

        stamp = run_stamp()
        record(search_efficiency.run(settings), stamp)
    later = {"outcome", "cost", "prediction"} & set(wanted)
    searches: dict[str, Any] = {}
    if later:
        import outcome

        grid = figures["search"].data.get("grid_spearman") if "search" in figures else None
        stamp = run_stamp()
        produced, searches = outcome.run(settings, later, grid)
        # The searches are shared: each figure is stamped with the whole step.
        for fig in produced:
            record(fig, dict(stamp))
    if "trust" in wanted:
        import trust

        stamp = run_stamp()
        record(trust.run(settings, searches), stamp)
    if "frugal" in wanted:
        import frugal

        stamp = run_stamp()
        record(frugal.run(settings), stamp)
    if "accuracy" in wanted:
        import accuracy_claims

        stamp = run_stamp()
        record(accuracy_claims.run(settings), stamp)

    meta = {
        "command": " ".join([COMMAND, *sys.argv[1:]]) if argv is None else COMMAND,
        "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "duration_s": time.perf_counter() - started,
        "load_start": load_start,
        "load_end": list(os.getloadavg()),
        "ran": wanted,
        "settings": {
            "quick": settings.quick,
            "reuse_reports": settings.reuse_reports,
            "trials": settings.trials,
            "seeds": settings.seeds,
        },
    }
    payload = {
        "meta": meta,
        "machine": machine,
        "figures": {k: f.to_dict() for k, f in figures.items()},
    }
    results_dir.mkdir(parents=True, exist_ok=True)
    _atomic_write(json_path, json.dumps(payload, indent=1, default=str) + "\n")
    _atomic_write(results_dir / "RESULTS.md", render(figures, machine, meta))
    log(f"wrote {results_dir / 'RESULTS.md'} and {json_path} ({meta['duration_s'] / 60:.1f} min)")
    return 0


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


if __name__ == "__main__":
    sys.exit(main())
