"""The run history: one line per ``measure``, ``check`` and ``search``, kept across runs.

Each command that measures appends a JSON line to ``history.jsonl`` (time, machine
fingerprint, recipe hash, variant, figures, provenance, interval) and a row to
``history-codecarbon.csv`` in CodeCarbon's column layout (``emissions.csv``: energies in kWh,
emissions in kg CO2e), for dashboards that read it. That CSV has columns of its own beside
CodeCarbon's: ``provenance`` (measured, integrated, estimated or modeled: an estimated figure
says so in every row), ``ci95_kwh``, ``variant`` and ``compresslab_version``.

The files live where the recipe's ``report.history`` says (default: the recipe's ``output``
folder, e.g. ``reports/``), so a team can keep them in its repository;
``report.history: null`` turns them off.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import os
import platform
import uuid
from pathlib import Path
from typing import Any

from compresslab import units
from compresslab._version import __version__
from compresslab.carbon import carbon_settings
from compresslab.machine import fingerprint, logical_cpus
from compresslab.recipe import Recipe, recipe_hash

log = logging.getLogger(__name__)

JSONL = "history.jsonl"
CSV = "history-codecarbon.csv"

#: CodeCarbon's ``emissions.csv`` columns (2.x), then ours.
CODECARBON_COLUMNS = [
    "timestamp",
    "project_name",
    "run_id",
    "duration",
    "emissions",
    "emissions_rate",
    "cpu_power",
    "gpu_power",
    "ram_power",
    "cpu_energy",
    "gpu_energy",
    "ram_energy",
    "energy_consumed",
    "country_name",
    "country_iso_code",
    "region",
    "cloud_provider",
    "cloud_region",
    "os",
    "python_version",
    "codecarbon_version",
    "cpu_count",
    "cpu_model",
    "gpu_count",
    "gpu_model",
    "longitude",
    "latitude",
    "ram_total_size",
    "tracking_mode",
    "on_cloud",
    "pue",
]
EXTRA_COLUMNS = ["provenance", "ci95_kwh", "variant", "command", "compresslab_version"]


def history_dir(recipe: Recipe, base_dir: Path | None = None) -> Path | None:
    """Where the recipe's history files go (None: turned off)."""
    where = recipe.report.history
    if where is None:
        return None
    if where == "":
        root = Path(recipe.output)
        return root if root.is_absolute() or base_dir is None else base_dir / root
    path = Path(where)
    return path if path.is_absolute() or base_dir is None else base_dir / path


def record(
    recipe: Recipe,
    *,
    command: str,
    variant: str,
    energy_j: float,
    duration_s: float,
    provenance: str,
    figures: dict[str, Any],
    components_j: dict[str, float] | None = None,
    ci95_j: float | None = None,
    base_dir: Path | None = None,
) -> Path | None:
    """Append one run to the history files; returns the JSONL file (None: history off).

    Args:
        recipe: the recipe that was run.
        command: ``measure``, ``check`` or ``search``.
        variant: what was measured (``baseline``, a variant label, or the best one found).
        energy_j: the joules the run itself measured (the measurement windows, or a search's
            own energy).
        duration_s: the wall time those joules cover.
        provenance: how ``energy_j`` was obtained.
        figures: the per-inference figures to keep (energy, interval, ratio, accuracy ...).
        components_j: ``energy_j`` by component (``cpu``, ``memory``, ``gpu-0`` ...).
        ci95_j: the 95% half-width of ``energy_j``, when known.
        base_dir: what a relative history path is resolved against.

    Never raises for an unwritable history: the run's result matters more (a warning says why).
    """
    folder = history_dir(recipe, base_dir)
    if folder is None:
        return None
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    entry = {
        "time": now,
        "command": command,
        "recipe": recipe.name,
        "recipe_hash": recipe_hash(recipe),
        "machine": fingerprint(),
        "variant": variant,
        "energy_j": energy_j,
        "duration_s": duration_s,
        "provenance": provenance,
        "ci95_j": ci95_j,
        **figures,
        "compresslab_version": __version__,
    }
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / JSONL, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry, default=str) + "\n")
        _append_csv(folder / CSV, _codecarbon_row(recipe, entry, components_j or {}))
    except OSError as e:
        log.warning("the run history could not be written to %s: %s", folder, e)
        return None
    return folder / JSONL


def _codecarbon_row(
    recipe: Recipe, entry: dict[str, Any], components_j: dict[str, float]
) -> dict[str, Any]:
    carbon = carbon_settings(
        region=recipe.carbon.region,
        intensity_g_per_kwh=recipe.carbon.intensity_g_per_kwh,
        pue=recipe.carbon.pue,
    )
    kwh = units.j_to_kwh(float(entry["energy_j"]))
    duration = max(float(entry["duration_s"]), 1e-9)
    kg = carbon.gco2e(kwh) / 1000
    by_kind = {"cpu": 0.0, "gpu": 0.0, "ram": 0.0}
    for name, joules in components_j.items():
        kind = "gpu" if name.startswith("gpu") else "ram" if name in ("memory", "dram") else "cpu"
        by_kind[kind] += joules
    if not components_j:
        by_kind["cpu"] = float(entry["energy_j"])
    machine = entry["machine"]
    ci = entry.get("ci95_j")
    return {
        "timestamp": entry["time"],
        "project_name": recipe.name,
        "run_id": str(uuid.uuid4()),
        "duration": duration,
        "emissions": kg,
        "emissions_rate": kg / duration,
        "cpu_power": by_kind["cpu"] / duration,
        "gpu_power": by_kind["gpu"] / duration,
        "ram_power": by_kind["ram"] / duration,
        "cpu_energy": units.j_to_kwh(by_kind["cpu"]),
        "gpu_energy": units.j_to_kwh(by_kind["gpu"]),
        "ram_energy": units.j_to_kwh(by_kind["ram"]),
        "energy_consumed": kwh,
        "country_name": "",
        "country_iso_code": recipe.carbon.region if recipe.carbon.region != "WORLD" else "",
        "region": "",
        "cloud_provider": "",
        "cloud_region": "",
        "os": platform.platform(),
        "python_version": platform.python_version(),
        "codecarbon_version": "",
        "cpu_count": logical_cpus(),
        "cpu_model": machine.get("cpu_model", ""),
        "gpu_count": sum(1 for n in components_j if n.startswith("gpu")),
        "gpu_model": "",
        "longitude": "",
        "latitude": "",
        "ram_total_size": _ram_gb(),
        "tracking_mode": "machine" if str(entry["provenance"]) == "measured" else "process",
        "on_cloud": "",
        "pue": carbon.pue,
        "provenance": entry["provenance"],
        "ci95_kwh": units.j_to_kwh(float(ci)) if ci is not None else "",
        "variant": entry["variant"],
        "command": entry["command"],
        "compresslab_version": __version__,
    }


def _append_csv(path: Path, row: dict[str, Any]) -> None:
    columns = CODECARBON_COLUMNS + EXTRA_COLUMNS
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    if not path.exists() or path.stat().st_size == 0:
        writer.writeheader()
    writer.writerow(row)
    with open(path, "a", encoding="utf-8", newline="") as fh:
        fh.write(buf.getvalue())


def _ram_gb() -> float | str:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return ""
