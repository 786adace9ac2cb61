"""Check energy measurement on this machine's hardware: an NVIDIA GPU (NVML), RAPL, or neither.

From the repository root, after ``make setup`` (under five minutes; ``--quick`` about one)::

    .venv/bin/python benchmarks/device_check.py                 # JSON on stdout
    .venv/bin/python benchmarks/device_check.py --out check.json --quick
    .venv/bin/python benchmarks/device_check.py --device cuda:1  # another GPU

Checks, each PASS, FAIL or SKIP (with the reason) and its figures:

- ``gpu_digits``: the digits recipe's baseline and an int8 variant (bitsandbytes LLM.int8)
  built, evaluated and measured on the GPU (``energy.device: cuda``, ``sampler: nvml``): the
  model and its inputs are on the GPU, the GPU's energy comes from NVML (``measured``), the
  host CPU's from RAPL or the estimate beside it, each with its provenance; the int8 variant is
  measured paired with the baseline.
- ``nvml_counter_vs_power``: over the same windows of a steady GPU load, NVML's energy
  counter against its power readings polled and integrated; they must agree within 5% on
  windows of 10 s (5 s with ``--quick``, then only reported).
- ``rapl_digits``: the digits baseline and its CPU int8 variant (``dynamic_int8``) measured with
  RAPL (``sampler: rapl``): measured provenance, no counter fault left unexplained, a plausible
  idle power.
- ``estimate_digits``: only when neither a GPU nor RAPL can be checked: the same measurement
  with the estimate, so that the script's own path is exercised.

Progress and the verdict (PASS, FAIL, or SKIPPED when no hardware check could run) go to
stderr, the JSON to ``--out`` (default stdout). The exit code is 0 when no check failed
(skipped checks are not failures), 1 otherwise. Nothing is downloaded:
the digits data ships with scikit-learn and the CNN trains in seconds on first use.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from compresslab.records import EnergyResult

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout without an install
    sys.path.insert(0, str(REPO))

#: NVML's counter and integrated power must agree within this on long windows.
AGREEMENT_REL = 0.05
#: Windows at least this long are judged against :data:`AGREEMENT_REL`.
LONG_WINDOW_S = 10.0
_T0 = time.perf_counter()


def log(message: str) -> None:
    """One progress line on stderr, with the seconds since the start."""
    print(f"[{time.perf_counter() - _T0:6.1f} s] {message}", file=sys.stderr, flush=True)


@dataclass
class Check:
    """One check's outcome: ``PASS``, ``FAIL`` or ``SKIP``, why, and its figures."""

    name: str
    status: str
    summary: str
    figures: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def _run(name: str, fn: Callable[[], Check]) -> Check:
    """Run one check; an exception is a FAIL with its reason, never a crash of the script."""
    log(f"{name}: start")
    t0 = time.perf_counter()
    try:
        check = fn()
    except Exception as e:  # a check's failure is reported, the others still run
        check = Check(
            name,
            "FAIL",
            f"{type(e).__name__}: {e}",
            {"traceback": traceback.format_exc(limit=8)},
        )
    check.seconds = round(time.perf_counter() - t0, 1)
    log(f"{name}: {check.status} ({check.seconds} s): {check.summary}")
    return check


# --- the machine --------------------------------------------------------------------------------


def environment(device: str) -> dict[str, Any]:
    """torch, CUDA, the GPUs, and what every energy sampler says about this machine."""
    import torch

    from compresslab.energy import describe_samplers
    from compresslab.energy.cuda import device_problem
    from compresslab.machine import cpu_model, logical_cpus

    gpus = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            gpus.append({"index": i, "name": props.name, "memory_gib": props.total_memory / 2**30})
    return {
        "host": platform.node(),
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "logical_cpus": logical_cpus(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "gpus": gpus,
        "device": device,
        "device_problem": device_problem(device),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "samplers": {
            name: {"provenance": str(prov), "available": avail.available, "reason": avail.reason}
            for name, prov, avail in describe_samplers()
        },
    }


# --- the digits recipe on a device --------------------------------------------------------------


def digits_recipe(*, device: str, sampler: str, quick: bool, out: Path) -> Any:
    """The shipped digits recipe, measured on ``device`` with ``sampler`` (short in quick mode)."""
    import yaml

    from compresslab.api import load_recipe

    data = yaml.safe_load((REPO / "recipes" / "digits.yaml").read_text())
    data["name"] = f"device-check-{sampler}"
    data["compression"] = [{"method": "bnb_int8"}, {"method": "dynamic_int8"}]
    data["energy"] = {
        "sampler": sampler,
        "device": device,
        # On a GPU the small CNN needs a large batch to draw clearly above the GPU's idle power.
        "batch_size": 256 if device == "cpu" else 8192,
        "warmup_s": 0.5 if quick else 1.0,
        "window_s": 1.0 if quick else 2.0,
        "idle_s": 1.0 if quick else 2.0,
        "min_windows": 3,
        "max_windows": 4 if quick else 8,
        "target_ci_rel": 0.05,
    }
    data["output"] = str(out)
    return load_recipe(data)


def _energy_figures(energy: EnergyResult) -> dict[str, Any]:
    meta = energy.metadata
    return {
        "sampler": energy.sampler,
        "provenance": str(energy.provenance),
        "energy_j_per_inference": energy.energy_j_per_inference,
        "ci95_j_per_inference": energy.ci95_j_per_inference,
        "gross_j_per_inference": energy.gross_j_per_inference,
        "idle_power_w": energy.idle_power_w,
        "windows": energy.windows,
        "ci_target_met": energy.ci_target_met,
        "components_j_per_inference": dict(energy.components_j_per_inference),
        "component_provenance": dict(energy.component_provenance),
        "latency_s_per_batch": energy.latency_s_per_batch,
        "threads": energy.threads,
        "windows_repeated": meta.get("windows_repeated", "0"),
        "window_faults": meta.get("window_faults", ""),
        "covers": meta.get("covers", ""),
    }


def measure_digits(
    *, device: str, sampler: str, int8_method: str, quick: bool, out: Path
) -> dict[str, Any]:
    """The digits baseline and its int8 variant, built, evaluated and measured on ``device``."""
    from compresslab.bench import VariantBench
    from compresslab.compress import VariantSpec
    from compresslab.compress.base import Step
    from compresslab.records import to_json
    from compresslab.tasks import load_task
    from compresslab.tasks.metrics import model_device

    recipe = digits_recipe(device=device, sampler=sampler, quick=quick, out=out)
    log(f"  loading the digits task (trains the CNN on first use), device {device}")
    task = load_task(recipe.task)
    bench = VariantBench(recipe=recipe, task=task)
    log(f"  sampler: {bench.selection.explain()}")
    figures: dict[str, Any] = {"selection": bench.selection.explain()}
    specs = {"baseline": VariantSpec(), int8_method: VariantSpec((Step(int8_method, {}),))}
    for label, spec in specs.items():
        placed = bench.place(bench.build(spec))
        where = model_device(placed)
        log(f"  {label}: built on the CPU, placed on {where}; evaluating and measuring")
        evaluation = bench.evaluate(spec)
        energy = evaluation.energy
        row = {
            "accuracy": evaluation.metric,
            "model_device": str(where),
            "batch_device": str(bench.inference_batch().device),
            **_energy_figures(energy),
            "vs_baseline": to_json(evaluation.vs_baseline),
        }
        figures[label] = row
        log(
            f"  {label}: accuracy {evaluation.metric:.4f}, {energy.energy_j_per_inference:.4g} "
            f"J per inference +/- {energy.ci95_j_per_inference:.2g} ({energy.provenance}), "
            f"components {row['component_provenance']}"
        )
    return figures


def _digits_verdict(name: str, figures: dict[str, Any], *, int8: str, device_type: str) -> Check:
    problems: list[str] = []
    base, variant = figures["baseline"], figures[int8]
    for label, row in (("baseline", base), (int8, variant)):
        if not str(row["model_device"]).startswith(device_type):
            problems.append(f"{label} ran on {row['model_device']}, not {device_type}")
        if not str(row["batch_device"]).startswith(device_type):
            problems.append(f"{label}'s inputs were on {row['batch_device']}")
        if not (row["energy_j_per_inference"] or 0) > 0:
            problems.append(f"{label} read no energy")
    if base["accuracy"] < 0.9:
        problems.append(f"baseline accuracy {base['accuracy']:.3f} < 0.9")
    if variant["accuracy"] < base["accuracy"] - 0.05:
        problems.append(f"{int8} lost {base['accuracy'] - variant['accuracy']:.3f} accuracy")
    provenance = base["component_provenance"] or {}
    if device_type == "cuda":
        gpu = [c for c in provenance if c.startswith("gpu-")]
        host = [c for c in provenance if not c.startswith("gpu-")]
        if not gpu or any(provenance[c] != "measured" for c in gpu):
            problems.append(f"no measured GPU component: {provenance}")
        if not host:
            problems.append("no host CPU component beside the GPU")
    elif any(p != "measured" for p in provenance.values()) or not provenance:
        problems.append(f"components not all measured: {provenance}")
    ratio = (variant.get("vs_baseline") or {}).get("ratio")
    summary = (
        f"baseline {base['energy_j_per_inference']:.4g} J/inference ({base['provenance']}, "
        f"{base['windows']} windows), {int8} x{ratio:.3g} of it"
        if ratio
        else f"baseline {base['energy_j_per_inference']:.4g} J/inference"
    )
    if problems:
        return Check(name, "FAIL", "; ".join(problems), figures)
    return Check(name, "PASS", summary, figures)


def gpu_digits(device: str, quick: bool, out: Path) -> Check:
    """The digits baseline and a bitsandbytes int8 variant on the GPU, measured with NVML."""
    figures = measure_digits(
        device=device, sampler="nvml", int8_method="bnb_int8", quick=quick, out=out
    )
    return _digits_verdict("gpu_digits", figures, int8="bnb_int8", device_type="cuda")


def rapl_digits(quick: bool, out: Path) -> Check:
    """The digits baseline and the CPU int8 variant, measured with RAPL."""
    figures = measure_digits(
        device="cpu", sampler="rapl", int8_method="dynamic_int8", quick=quick, out=out
    )
    check = _digits_verdict("rapl_digits", figures, int8="dynamic_int8", device_type="cpu")
    idle_w = figures["baseline"]["idle_power_w"]
    if not (idle_w and idle_w > 0):
        check.status = "FAIL"
        check.summary += f"; idle power {idle_w!r} W is not positive"
    return check


def estimate_digits(quick: bool, out: Path) -> Check:
    """Neither a GPU nor RAPL: the same path with the estimate (exercises the script)."""
    figures = measure_digits(
        device="cpu", sampler="estimate", int8_method="dynamic_int8", quick=True, out=out
    )
    base = figures["baseline"]
    ok = (base["energy_j_per_inference"] or 0) > 0 and base["provenance"] == "estimated"
    return Check(
        "estimate_digits",
        "PASS" if ok else "FAIL",
        f"estimate path ran: {base['energy_j_per_inference']:.4g} J/inference (estimated)",
        figures,
    )


# --- NVML's counter against its integrated power -------------------------------------------------


def _gpu_load(device: str) -> Callable[[], None]:
    """A steady GPU load: a 4096 x 4096 matmul chain (the GPU draws well above idle)."""
    import torch

    a = torch.randn(4096, 4096, device=device)
    b = torch.randn(4096, 4096, device=device)

    def run() -> None:
        for _ in range(8):
            torch.mm(a, b, out=a)
            a.mul_(1e-3)
        torch.cuda.synchronize(device)

    return run


def nvml_counter_vs_power(device: str, quick: bool) -> Check:
    """Over the same windows, NVML's energy counter vs its power polled and integrated."""
    import torch

    from compresslab.energy.nvml_devices import select_targets
    from compresslab.energy.nvml_library import init_nvml, load_nvml, shutdown_nvml
    from compresslab.energy.nvml_window import trapezoid_mj

    nv = load_nvml()
    init_nvml(nv)
    try:
        target = select_targets(nv, device_indices=None, torch_device=device)[0]
        handle = target.handle
        try:
            nv.nvmlDeviceGetTotalEnergyConsumption(handle)
        except nv.NVMLError_NotSupported:
            return Check(
                "nvml_counter_vs_power",
                "SKIP",
                "this GPU has no energy counter (pre-Volta): nothing to compare",
            )
        windows, window_s = (1, 5.0) if quick else (3, LONG_WINDOW_S)
        samples: list[tuple[float, float]] = []
        stop = threading.Event()

        def poll() -> None:
            while not stop.is_set():
                samples.append((time.perf_counter(), float(nv.nvmlDeviceGetPowerUsage(handle))))
                stop.wait(0.02)

        load = _gpu_load(device)
        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        log(f"  {target.how}; steady load for 3 s, then {windows} window(s) of {window_s:g} s")
        t_end = time.perf_counter() + 3.0
        while time.perf_counter() < t_end:
            load()
        rows = []
        for k in range(windows):
            torch.cuda.synchronize(device)
            e0_mj, t0 = nv.nvmlDeviceGetTotalEnergyConsumption(handle), time.perf_counter()
            while time.perf_counter() - t0 < window_s:
                load()
            torch.cuda.synchronize(device)
            e1_mj, t1 = nv.nvmlDeviceGetTotalEnergyConsumption(handle), time.perf_counter()
            inside = [(t, p) for t, p in samples if t0 <= t <= t1]
            integrated_j = trapezoid_mj(inside) / 1000.0
            # The samples start and end a poll interval inside the window: scale to its length.
            span = inside[-1][0] - inside[0][0] if len(inside) > 1 else 0.0
            if span > 0:
                integrated_j *= (t1 - t0) / span
            counter_j = (e1_mj - e0_mj) / 1000.0
            rel = (integrated_j - counter_j) / counter_j if counter_j > 0 else float("nan")
            rows.append(
                {
                    "window_s": round(t1 - t0, 3),
                    "counter_j": counter_j,
                    "integrated_j": integrated_j,
                    "power_w": counter_j / (t1 - t0),
                    "power_samples": len(inside),
                    "rel_difference": rel,
                }
            )
            log(
                f"  window {k + 1}: counter {counter_j:.1f} J, integrated power "
                f"{integrated_j:.1f} J ({rel:+.2%}), {counter_j / (t1 - t0):.0f} W"
            )
        stop.set()
        poller.join()
    finally:
        shutdown_nvml(nv)
    worst = max(abs(r["rel_difference"]) for r in rows)
    figures = {"windows": rows, "threshold_rel": AGREEMENT_REL, "window_s": window_s}
    summary = f"counter vs integrated power: worst {worst:.2%} over {windows} x {window_s:g} s"
    if window_s < LONG_WINDOW_S:
        return Check("nvml_counter_vs_power", "PASS", summary + " (quick: reported only)", figures)
    status = "PASS" if worst <= AGREEMENT_REL else "FAIL"
    return Check("nvml_counter_vs_power", status, f"{summary} (limit {AGREEMENT_REL:.0%})", figures)


# --- main ---------------------------------------------------------------------------------------


def run_checks(*, device: str, quick: bool, out: Path) -> tuple[dict[str, Any], list[Check]]:
    """The machine's description and every check, run or skipped with the reason."""
    from compresslab.energy.nvml import NvmlSampler
    from compresslab.energy.rapl import RaplSampler

    env = environment(device)
    log(f"torch {env['torch']} (CUDA {env['torch_cuda']}), GPUs: {len(env['gpus'])}")
    for name, row in env["samplers"].items():
        log(f"  sampler {name}: {'yes' if row['available'] else 'no'} ({row['reason'][:160]})")
    checks: list[Check] = []
    gpu_why = env["device_problem"]
    if gpu_why is None:
        nvml = NvmlSampler(torch_device=device).available()
        gpu_why = None if nvml else f"NVML cannot measure {device}: {nvml.reason}"
    if gpu_why is None:
        checks.append(_run("gpu_digits", lambda: gpu_digits(device, quick, out)))
        checks.append(_run("nvml_counter_vs_power", lambda: nvml_counter_vs_power(device, quick)))
    else:
        for name in ("gpu_digits", "nvml_counter_vs_power"):
            checks.append(Check(name, "SKIP", gpu_why))
            log(f"{name}: SKIP: {gpu_why}")
    rapl = RaplSampler().available()
    if rapl:
        checks.append(_run("rapl_digits", lambda: rapl_digits(quick, out)))
    else:
        why = f"RAPL cannot be read here: {rapl.reason}"
        checks.append(Check("rapl_digits", "SKIP", why))
        log(f"rapl_digits: SKIP: {why}")
    if all(c.status == "SKIP" for c in checks):
        checks.append(_run("estimate_digits", lambda: estimate_digits(quick, out)))
    return env, checks


def main(argv: list[str] | None = None) -> int:
    """Run the checks, print the verdict, write the JSON; 0 unless a check failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="the GPU to check (cuda or cuda:N)")
    parser.add_argument("--quick", action="store_true", help="shorter windows (about 1 minute)")
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default: stdout)")
    args = parser.parse_args(argv)
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    log(f"device check of {platform.node()} ({'quick' if args.quick else 'full'})")
    with tempfile.TemporaryDirectory(prefix="compresslab-device-check-") as scratch:
        env, checks = run_checks(device=args.device, quick=args.quick, out=Path(scratch))
    failed = [c for c in checks if c.status == "FAIL"]
    hardware = [c for c in checks if c.status != "SKIP" and c.name != "estimate_digits"]
    verdict = "FAIL" if failed else ("PASS" if hardware else "SKIPPED")
    note = "" if hardware or failed else " (no GPU or RAPL to check here; exit code 0)"
    print(f"\nverdict: {verdict}{note}", file=sys.stderr)
    for c in checks:
        print(f"  {c.status:4}  {c.name}: {c.summary}", file=sys.stderr, flush=True)
    report = {
        "started": started,
        "seconds": round(time.perf_counter() - _T0, 1),
        "quick": args.quick,
        "verdict": verdict,
        "machine": env,
        "checks": [asdict(c) for c in checks],
    }
    text = json.dumps(report, indent=2, default=str)
    if args.out is None:
        print(text, flush=True)
    else:
        args.out.write_text(text + "\n")
        log(f"wrote {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
