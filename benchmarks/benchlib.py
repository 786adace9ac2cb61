"""What every benchmark figure shares: paths, settings, the figure record, statistics, machine.

The figures themselves live one per module (``overhead``, ``repeatability``,
``search_efficiency``, ``outcome``); :mod:`run` runs them and writes ``RESULTS.md`` and
``results.json``.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Before anything imports torch (machine_info does): compresslab asks OpenMP to let waiting
# threads sleep (OMP_WAIT_POLICY=PASSIVE), which only works before torch loads.
import compresslab  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
#: Searches and scratch files of the benchmark (ignored by git, see benchmarks/.gitignore).
OUT = BENCH / "out"
#: How to run the benchmark from the repository root (what ``make bench`` runs).
COMMAND = ".venv/bin/python benchmarks/run.py"

_T0 = time.perf_counter()


@dataclass(frozen=True)
class Settings:
    """Options of one benchmark run (from the command line).

    Attributes:
        quick: a smoke run with tiny budgets (its numbers mean nothing; written elsewhere).
        reuse_reports: read ``reports/<name>/`` of earlier ``compresslab search`` runs
            instead of running the searches of figures 4 to 6 (runs the missing ones).
        trials: budget (distinct variants) per recipe name for the searches of figure 4.
        seeds: seeds per sampler in the replays of figure 3.
        out: folder for the benchmark's own searches and scratch files.
    """

    quick: bool = False
    reuse_reports: bool = False
    trials: dict[str, int] = field(default_factory=dict)
    seeds: int = 10
    out: Path = OUT


@dataclass
class Figure:
    """One benchmark figure: what it measures, its target, the verdict and the raw numbers.

    Attributes:
        key: short name used by ``--only`` (``overhead``, ``repeatability`` ...).
        number: the figure's number in issue 10 (1 to 6).
        title: one line.
        target: the target as stated in the issue, or ``None`` when the figure has none.
        met: whether the target was met (``None``: no target, or could not be judged).
        headline: one sentence with the figure's main number.
        body: markdown (tables, method, why a target was missed).
        data: the raw numbers (JSON-able) for ``results.json``.
        command: the exact command that reproduces the figure.
    """

    key: str
    number: int
    title: str
    target: str | None
    met: bool | None
    headline: str
    body: str
    data: dict[str, Any]
    command: str
    run: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Figure:
        """Inverse of :meth:`to_dict` (for merging a subset run into earlier results)."""
        return cls(**d)


def quick_recipe(recipe: Any) -> Any:
    """``recipe`` with tiny windows and few pairs, for ``--quick`` (its numbers mean nothing)."""
    energy = recipe.energy.model_copy(
        update={"warmup_s": 0.05, "window_s": 0.05, "min_windows": 2, "max_windows": 3}
    )
    search = recipe.search.model_copy(update={"confirm_pairs": 2})
    return recipe.model_copy(update={"energy": energy, "search": search})


def log(message: str) -> None:
    """Progress on stderr, with the seconds since the benchmark started."""
    print(f"[bench {time.perf_counter() - _T0:7.1f}s] {message}", file=sys.stderr, flush=True)


def spread(values: list[float]) -> dict[str, float]:
    """Median with quartiles, extremes and count (the summary every timing figure uses)."""
    v = sorted(values)
    if not v:
        return {"n": 0}
    if len(v) >= 4:
        q1, _, q3 = statistics.quantiles(v, n=4, method="inclusive")
    else:
        q1, q3 = v[0], v[-1]
    return {
        "n": len(v),
        "median": statistics.median(v),
        "q1": q1,
        "q3": q3,
        "min": v[0],
        "max": v[-1],
    }


def cv(values: list[float]) -> float:
    """Coefficient of variation: sample standard deviation over the mean."""
    return statistics.stdev(values) / statistics.fmean(values)


def human_duration(seconds: float) -> str:
    """``5400`` as ``1.5 hours``: minutes below two hours, hours below two days, else days."""
    if seconds < 7200:
        return f"{seconds / 60:,.1f} minutes"
    if seconds < 172800:
        return f"{seconds / 3600:,.1f} hours"
    return f"{seconds / 86400:,.1f} days"


def pct(x: float, digits: int = 2) -> str:
    """``0.0123`` as ``+1.23%``."""
    return f"{100 * x:+.{digits}f}%"


def md_table(headers: list[str], rows: list[list[Any]]) -> str:
    """A markdown table."""
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def verdict(met: bool | None) -> str:
    """The word RESULTS.md uses for a target."""
    return {True: "**met**", False: "**missed**", None: "n/a"}[met]


_INTERESTING_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx512_bf16",
    "avx_vnni",
    "amx_bf16",
    "amx_int8",
    "amx_tile",
)


def cpu_flags() -> list[str]:
    """Every flag of the first CPU in /proc/cpuinfo (empty when unreadable)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line.split(":", 1)[1].split()
    except OSError:
        pass
    return []


def machine_info() -> dict[str, Any]:
    """What RESULTS.md says about the machine: fingerprint, CPU flags, versions, samplers."""
    from importlib import metadata

    import torch

    from compresslab.energy import describe_samplers
    from compresslab.machine import fingerprint

    flags = cpu_flags()
    versions = {}
    for pkg in ("compresslab", "torch", "optuna", "torch-pruning", "scipy"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "not installed"
    return {
        "fingerprint": fingerprint(),
        "cpu_flags_of_interest": [f for f in _INTERESTING_FLAGS if f in flags],
        "cpu_flags": flags,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "mkldnn_bf16": _bf16_support(),
        "versions": versions,
        "python": platform.python_version(),
        "samplers": {
            name: {"provenance": str(prov), "available": bool(av), "reason": av.reason}
            for name, prov, av in describe_samplers()
        },
    }


def _bf16_support() -> bool | None:
    try:
        import torch

        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # a private probe; absent on some builds
        return None


def run_stamp() -> dict[str, Any]:
    """When and under what load a figure started (completed by :func:`close_stamp`)."""
    return {
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "load_start": list(os.getloadavg()),
        "_t0": time.perf_counter(),
    }


def close_stamp(stamp: dict[str, Any]) -> dict[str, Any]:
    """The stamp with the load average at the end and the figure's run time."""
    out = dict(stamp)
    out["duration_s"] = time.perf_counter() - out.pop("_t0")
    out["load_end"] = list(os.getloadavg())
    return out
