"""A search that costs less than it saves (issue 20): today's default digits search against the new.

Arms, each a real ``compresslab search --fresh`` in a subprocess of its own:

- **before**: the code and ``recipes/digits.yaml`` of ``--base-rev`` (default: the commit
  before issue 20's work; NSGA-II, every feasible variant measured), extracted with
  ``git archive`` under ``benchmarks/out/frugal/``;
- **after**: this checkout's code and ``recipes/digits.yaml`` (``auto``: TPE here, distinct
  proposals, calibrated prediction skipping variants predicted dominated).

Each repetition runs the two arms side by side (``--parallel``, the default: the same load for
both) or one after the other, alternating which goes first. From each study's storage alone:
the search's energy (every session, estimated on this VM), wall time, what was measured,
screened or predicted, the frontier's hypervolume on the paired ratio scale (confirmed ratios
where the search confirmed them; reference point: the minimum accepted accuracy and the
baseline's energy, ratio 1), the best variant's confirmed saving and the break-even count.
The after arm also reports its calibration's leave-one-out Spearman and the cost per part.

``--flagship`` also runs the after arm's default search on ``recipes/minilm-wordnet.yaml``
(minutes to tens of minutes here) for the flagship's break-even.

As figure 8 of ``benchmarks/run.py`` (``--only frugal``), or standalone::

    .venv/bin/python benchmarks/frugal.py --repeats 3 [--flagship] [--base-rev REV]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchlib import COMMAND, OUT, REPO, Figure, Settings, log, md_table

#: The commit before issue 20's work: today's default search.
BASE_REV = "5516b7a"
TODAY_J = 1222.1  # benchmarks/RESULTS.md, figure 5 (2026-11-22, the other CPU kind)


def _python() -> str:
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def extract(rev: str, into: Path) -> Path:
    """The package and recipes of ``rev``, extracted once (``git archive``)."""
    if not (into / "compresslab").is_dir():
        into.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", rev, "compresslab", "recipes"],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def start(
    arm: str, code: Path, recipe: Path, out: Path, trials: int | None = None
) -> tuple[subprocess.Popen[bytes], Any]:
    """Start one search (fresh) with ``code`` first on the path; its output under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    text = recipe.read_text().replace("output: reports", f"output: {out / 'reports'}")
    if trials is not None:
        text = re.sub(r"(?m)^  trials: \d+", f"  trials: {trials}", text)
    mine = out / recipe.name
    mine.write_text(text)
    env = {**os.environ, "PYTHONPATH": str(code)}
    log(f"frugal: start {arm} ({recipe.name}) in {out}")
    handle = open(out / "search.log", "wb")  # noqa: SIM115 - closed by finish()
    # cwd: the output folder, never this checkout (`python -m` puts the working directory
    # first on the path, which would shadow the base revision's package).
    proc = subprocess.Popen(
        [_python(), "-m", "compresslab", "search", str(mine), "--fresh"],
        env=env,
        cwd=out,
        stdout=handle,
        stderr=subprocess.STDOUT,
    )
    return proc, (handle, time.perf_counter(), os.getloadavg())


def hv_ratio(points: list[tuple[float, float]], min_accuracy: float) -> float:
    """Area dominated by (ratio, accuracy) points up to (1, min_accuracy)."""
    hv, best = 0.0, min_accuracy
    for ratio, acc in sorted(points):
        if ratio < 1 and acc > best:
            hv += (1 - ratio) * (acc - best)
            best = acc
    return hv


def heldout_on_grid(cal: dict[str, Any] | None, fitted: list[Any], grid: Path) -> dict[str, Any]:
    """The search's calibration predicting the replayed digits grid (figure 3's table).

    The grid holds every variant of the digits space built and measured once, in another
    session (``benchmarks/out/grids/digits.json``). Each grid variant whose operation counts
    none of the fitted variants shares is held out; both sides are taken as ratios to their own
    baseline (the grid's and the study's scales differ with the load they ran under). Spearman
    and relative errors of predicted against measured ratios.
    """
    import math

    import numpy as np
    from scipy.stats import spearmanr

    from compresslab.modeled.calibration import from_dict
    from compresslab.records import OpCounts, from_json, to_json

    def key(counts: Any) -> str:
        """One variant's counts as text, whether typed or JSON (ints read back as floats)."""
        typed = counts if isinstance(counts, OpCounts) else from_json(OpCounts, counts)
        return json.dumps(to_json(typed), sort_keys=True)

    if not cal:
        return {"why": "the search stored no calibration"}
    if not grid.exists():
        return {"why": f"no grid at {grid}: run figure 3 first (`--only search`)"}
    table = json.loads(grid.read_text())
    rows = table["rows"]
    calibration = from_dict(cal)
    seen = {key(c) for c in fitted}
    base = rows["baseline"]
    pred_base = calibration.predict(base["op_counts"])
    predicted, measured = [], []
    for row in rows.values():
        if not row.get("estimated_j") or key(row["op_counts"]) in seen:
            continue
        predicted.append(calibration.predict(row["op_counts"]) / pred_base)
        measured.append(row["estimated_j"] / base["estimated_j"])
    if len(predicted) < 3:
        return {"why": f"only {len(predicted)} grid variants are not in the fit"}
    errors = np.abs(np.asarray(predicted) / np.asarray(measured) - 1)
    rho = float(spearmanr(predicted, measured).statistic)
    return {
        "n": len(predicted),
        "spearman": rho if math.isfinite(rho) else None,
        "median_error_rel": float(np.median(errors)),
        "p90_error_rel": float(np.percentile(errors, 90)),
        "grid_built": table.get("built"),
        "grid_protocol": table.get("protocol"),
    }


def summarize(arm: str, out: Path, recipe_path: Path, wall_s: float, load: Any) -> dict[str, Any]:
    """What one finished search spent and found, from its storage alone."""
    from compresslab import load_recipe
    from compresslab.records import to_json
    from compresslab.report.figures import search_cost, search_cost_parts
    from compresslab.study import load_result

    recipe = load_recipe(out / recipe_path.name)
    result = load_result(recipe)
    cost = search_cost(result)
    front = result.frontier
    points = []
    for r in front:
        ratio = r.confirmed.ratio if r.confirmed is not None else r.ratio_vs_baseline
        if ratio is not None:
            points.append((ratio, float(r.accuracy or 0)))
    best = result.best_saving()
    base = result.baseline
    best_ratio = None
    if best is not None and not best.is_baseline:
        confirmed = best.confirmed
        best_ratio = confirmed.ratio if confirmed is not None else (best.ratio_vs_baseline or 1.0)
    saving = base.energy_j_per_inference * (1 - best_ratio) if base and best_ratio else None
    energy = cost.energy_j if cost else float("nan")
    summary = next(iter(result.info.calibrations.values()), None)
    cal = to_json(summary) if summary is not None else None
    fitted = []
    if cal:
        from compresslab.study.predict import study_samples
        from compresslab.study.storage import open_study

        trials = open_study(recipe, storage=result.storage).get_trials(deepcopy=False)
        fitted = [s.op_counts for s in study_samples(trials) if s.trial in cal.get("trials", [])]
    return {
        "arm": arm,
        "recipe": recipe.name,
        "sampler": result.info.optuna_sampler,
        "energy_j": energy,
        "wall_s": wall_s,
        "load_start": list(load),
        "load_end": list(os.getloadavg()),
        "trials": len(result.trials),
        "measured": len(result.measured),
        "screened": len(result.screened),
        "predicted": len(result.predicted),
        "reused": len(result.reused),
        "hv_ratio": hv_ratio(points, result.min_accuracy),
        "best": best.variant if best else None,
        "best_ratio_confirmed": best_ratio,
        "baseline_j": base.energy_j_per_inference if base else None,
        "saving_j": saving,
        "break_even": energy / saving if saving and saving > 0 else None,
        "unit": cost.unit if cost else "inferences",
        "calibration": (cal or {}).get("loo"),
        "calibration_n": (cal or {}).get("n"),
        "calibration_heldout": heldout_on_grid(cal, fitted, OUT / "grids" / "digits.json")
        if recipe.name == "digits"
        else None,
        "parts": [
            {"part": p.name, "wall_s": p.wall_s, "cpu_s": p.cpu_s, "energy_j": p.energy_j}
            for p in search_cost_parts(result)
        ],
    }


def run_pair(
    rep: int,
    code: dict[str, Path],
    parallel: bool,
    root: Path,
    tag: str = "",
    arms: tuple[str, ...] = ("before", "after"),
    trials: dict[str, int | None] | None = None,
) -> list[dict[str, Any]]:
    """One repetition: both arms, side by side or one after the other."""
    order = list(arms) if rep % 2 == 0 else list(reversed(arms))
    runs = []
    out = []
    for arm in order:
        where = root / f"{tag}rep{rep}-{arm}"
        recipe = code[arm] / "recipes" / "digits.yaml"
        budget = (trials or {}).get(arm)
        runs.append((arm, where, start(arm, code[arm], recipe, where, budget)))
        if not parallel:
            out.append(_finish(*runs.pop()))
    out += [_finish(*r) for r in runs]
    return out


def _finish(arm: str, where: Path, started: tuple[Any, Any]) -> dict[str, Any]:
    proc, (handle, t0, load) = started
    rc = proc.wait()
    handle.close()
    if rc != 0:
        raise SystemExit(f"frugal: the {arm} search failed (exit {rc}): see {where}/search.log")
    summary = summarize(arm, where, Path("digits.yaml"), time.perf_counter() - t0, load)
    log(f"frugal: {arm} done: {summary['energy_j']:.0f} J, hv {summary['hv_ratio']:.4f}")
    return summary


def render(rows: list[dict[str, Any]], flagship: dict[str, Any] | None) -> str:
    """The markdown summary of every run, and the verdicts."""
    table = [
        [
            r["arm"],
            r["sampler"],
            f"{r['energy_j']:,.0f} J",
            f"{r['wall_s']:.0f} s",
            f"{r['measured']} / {r['screened']} / {r['predicted']} / {r['reused']}",
            f"{r['hv_ratio']:.4f}",
            f"{r['best_ratio_confirmed']:.3f}" if r["best_ratio_confirmed"] else "-",
            f"{r['break_even']:,.0f}" if r["break_even"] else "-",
            f"{r['load_start'][0]:.1f} → {r['load_end'][0]:.1f}",
        ]
        for r in rows
    ]
    by = {a: [r for r in rows if r["arm"] == a] for a in ("before", "after")}
    med = {
        a: {k: statistics.median(r[k] for r in v) for k in ("energy_j", "hv_ratio")}
        for a, v in by.items()
        if v
    }
    lines = [
        md_table(
            [
                "arm",
                "sampler",
                "search energy (estimated)",
                "wall",
                "measured / screened / predicted / reused",
                "frontier HV (ratio scale)",
                "best ratio (confirmed)",
                "break-even (inferences)",
                "load (1 min)",
            ],
            table,
        )
    ]
    if "before" in med and "after" in med:
        e = med["after"]["energy_j"] / med["before"]["energy_j"]
        h = med["after"]["hv_ratio"] / med["before"]["hv_ratio"]
        lines.append(
            f"Median energy after / before: {e:.2f} (target ≤ 0.5: "
            f"{'met' if e <= 0.5 else 'missed'}); "
            f"median frontier HV after / before: {h:.2f} (target ≥ 0.95: "
            f"{'met' if h >= 0.95 else 'missed'}); after / today's published 1.2 kJ: "
            f"{med['after']['energy_j'] / TODAY_J:.2f}."
        )
    for r in by.get("after", []):
        cal = r["calibration"] or {}
        if cal:
            held = r.get("calibration_heldout") or {}
            lines.append(
                f"Calibration ({r['calibration_n']} variants, leave-one-out): Spearman "
                f"{cal['spearman']:.2f}, median error {100 * cal['median_error_rel']:.0f}%, 90th "
                f"percentile {100 * cal['error_rel']:.0f}%; "
                + (
                    f"on the {held['n']} variants of the replayed digits grid (figure 3) whose "
                    f"operation counts it was not fitted on, as ratios to each side's baseline: "
                    f"Spearman {held['spearman']:.2f} (target ≥ 0.9: "
                    f"{'met' if (held['spearman'] or 0) >= 0.9 else 'missed'}), median error "
                    f"{100 * held['median_error_rel']:.0f}%, 90th percentile "
                    f"{100 * held['p90_error_rel']:.0f}%."
                    if "n" in held
                    else f"not tested on held-out grid variants: {held.get('why', 'no grid')}."
                )
            )
    after = by.get("after")
    if after:
        parts = md_table(
            ["part", "wall s", "CPU s", "energy"],
            [
                [
                    p["part"],
                    f"{p['wall_s']:.0f}",
                    f"{p['cpu_s']:.0f}" if p["cpu_s"] == p["cpu_s"] else "-",
                    f"{p['energy_j']:.0f} J" if p["energy_j"] is not None else "-",
                ]
                for p in after[0]["parts"]
            ],
        )
        lines.append("Cost per part, first after run:\n\n" + parts)
    if flagship:
        lines.append(
            f"Flagship ({flagship['recipe']}, {flagship['sampler']}): "
            f"{flagship['energy_j']:,.0f} J, "
            f"best {flagship['best']} at confirmed ratio {flagship['best_ratio_confirmed']}, "
            f"break-even {flagship['break_even'] or float('nan'):,.0f} {flagship['unit']} "
            f"(target ≤ 100,000)."
        )
    return "\n\n".join(lines)


def run(settings: Settings, *, repeats: int = 3, flagship: bool = True) -> Figure:
    """The comparison as a benchmark figure (for ``benchmarks/run.py``; key ``frugal``)."""
    root = settings.out / "frugal"
    code = {"before": extract(BASE_REV, root / f"base-{BASE_REV}"), "after": REPO}
    rows: list[dict[str, Any]] = []
    for rep in range(1 if settings.quick else repeats):
        rows += run_pair(rep, code, True, root)
    flag = None
    if flagship and not settings.quick:
        where = root / "flagship-after"
        proc, info = start("after", REPO, REPO / "recipes" / "minilm-wordnet.yaml", where)
        proc.wait()
        info[0].close()
        flag = summarize("after", where, Path("minilm-wordnet.yaml"), 0.0, info[2])
    before = [r["energy_j"] for r in rows if r["arm"] == "before"]
    after = [r["energy_j"] for r in rows if r["arm"] == "after"]
    hv_b = [r["hv_ratio"] for r in rows if r["arm"] == "before"]
    hv_a = [r["hv_ratio"] for r in rows if r["arm"] == "after"]
    e = statistics.median(after) / statistics.median(before)
    h = statistics.median(hv_a) / statistics.median(hv_b)
    held = [
        (r.get("calibration_heldout") or {}).get("spearman") for r in rows if r["arm"] == "after"
    ]
    calibrated = bool(held) and all(x is not None and x >= 0.9 for x in held)
    met = (
        e <= 0.5
        and h >= 0.95
        and calibrated
        and bool(flag and (flag["break_even"] or 1e99) <= 100_000)
    )
    return Figure(
        key="frugal",
        number=8,
        title="A search that costs less than it saves: today's default digits search vs the new",
        target="half of today's energy for 95% of its frontier hypervolume; calibration "
        "Spearman at least 0.9 on held-out digits variants; flagship break-even at most 100,000 "
        "inferences",
        met=met,
        headline=f"energy after / before {e:.2f}, frontier hypervolume after / before {h:.2f}"
        + (
            "; calibration Spearman on held-out grid variants "
            + ", ".join("-" if x is None else f"{x:.2f}" for x in held)
            if held
            else ""
        )
        + (
            f"; flagship break-even {flag['break_even']:,.0f} inferences"
            if flag and flag["break_even"]
            else ""
        ),
        body=render(rows, flag),
        data={"runs": rows, "flagship": flag},
        command=f"{COMMAND} --only frugal",
    )


def main(argv: list[str] | None = None) -> None:
    """Run the arms, write ``benchmarks/out/frugal/frugal.json`` and print the summary."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--base-rev", default=BASE_REV)
    p.add_argument("--sequential", action="store_true", help="one arm at a time")
    p.add_argument("--flagship", action="store_true", help="also the MiniLM recipe (after)")
    p.add_argument("--only-flagship", action="store_true")
    p.add_argument("--tag", default="", help="prefix of this run's folders")
    p.add_argument("--arms", default="before,after", help="which arms (before, after)")
    p.add_argument("--after-trials", type=int, default=None, help="the after arm's budget")
    args = p.parse_args(argv)
    root = OUT / "frugal"
    code = {"before": extract(args.base_rev, root / f"base-{args.base_rev}"), "after": REPO}
    rows: list[dict[str, Any]] = []
    if not args.only_flagship:
        for rep in range(args.repeats):
            rows += run_pair(
                rep,
                code,
                not args.sequential,
                root,
                args.tag,
                tuple(a.strip() for a in args.arms.split(",") if a.strip()),
                {"after": args.after_trials},
            )
    flagship = None
    if args.flagship or args.only_flagship:
        where = root / "flagship-after"
        recipe = REPO / "recipes" / "minilm-wordnet.yaml"
        proc, info = start("after", REPO, recipe, where)
        rc = proc.wait()
        info[0].close()
        if rc != 0:
            raise SystemExit(f"frugal: the flagship search failed: see {where}/search.log")
        flagship = summarize("after", where, recipe, time.perf_counter() - info[1], info[2])
    (root / f"{args.tag}frugal.json").write_text(
        json.dumps({"runs": rows, "flagship": flagship}, indent=1)
    )
    print(render(rows, flagship))


if __name__ == "__main__":
    main()
