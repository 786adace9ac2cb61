from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from compresslab.report import frontier_frame, render_markdown, trials_frame, write_report
from compresslab.report.table import COLUMNS
from compresslab.results import SearchResult, TrialRecord


def _energy(j: float, ci: float = 0.0) -> dict[str, object]:
    return {
        "energy_j_per_inference": j,
        "ci95_j_per_inference": ci,
        "provenance": "estimated",
        "sampler": "estimate",
        "windows": 3,
        "n_inferences": 300,
        "latency_s_per_batch": 0.01,
        "batch_size": 64,
    }


def _done(
    n: int,
    variant: str,
    params: dict[str, object],
    acc: float,
    ci: tuple[float, float],
    feasible: bool,
    energy: dict[str, object],
    n_params: int,
    macs: float,
    size: int,
) -> TrialRecord:
    return TrialRecord(
        number=n,
        state="COMPLETE",
        variant=variant,
        is_baseline=n == 0,
        params=params,
        accuracy=acc,
        accuracy_ci95=ci,
        feasible=feasible,
        energy=energy,
        modeled_j_per_inference=2e-5 * (n + 1),
        n_params=n_params,
        macs_per_inference=macs,
        size_bytes=size,
    )


def _result() -> SearchResult:
    trials = [
        _done(
            0,
            "baseline",
            {"prune": "none"},
            0.99,
            (0.97, 1.0),
            True,
            _energy(1e-3, 1e-5),
            1000,
            5e5,
            4000,
        ),
        _done(
            1,
            "prune_channels(ratio=0.5)",
            {"prune": "prune_channels", "prune_channels.ratio": 0.5},
            0.985,
            (0.96, 0.99),
            True,
            _energy(4e-4, 1e-5),
            300,
            1.5e5,
            1500,
        ),
        _done(
            2,
            "prune_channels(ratio=0.9)",
            {"prune": "prune_channels", "prune_channels.ratio": 0.9},
            0.5,
            (0.45, 0.55),
            False,
            _energy(1e-4),
            30,
            1e4,
            300,
        ),
        TrialRecord(
            number=3,
            state="FAIL",
            variant="bf16",
            is_baseline=False,
            params={"quantize": "bf16"},
            error="VariantError: boom",
        ),
    ]
    return SearchResult(
        recipe_name="unit",
        study_name="unit",
        storage="sqlite:///x.db",
        trials=trials,
        baseline_accuracy=0.99,
        min_accuracy=0.98,
        tolerance="1 points absolute",
        info={
            "metric": "accuracy",
            "sampler_selection": "estimate: used",
            "sampler_metadata": {"watts_per_core": "7"},
            "machine": {"host": "h"},
        },
    )


def test_trials_frame_has_every_column_and_marks_the_frontier() -> None:
    df = trials_frame(_result())
    assert list(df.columns[: len(COLUMNS)]) == COLUMNS
    assert "param.prune_channels.ratio" in df.columns
    assert df.loc[df.trial == 1, "pareto"].item()
    assert df.loc[df.trial == 0, "pareto"].item()
    assert not df.loc[df.trial == 2, "pareto"].item()  # infeasible: below the tolerance
    assert df.loc[df.trial == 1, "energy_ratio_vs_baseline"].item() == 0.4
    assert df.loc[df.trial == 1, "kwh_per_1k"].item() == 4e-4 * 1000 / 3.6e6
    assert df.loc[df.trial == 3, "error"].item() == "VariantError: boom"
    assert df.loc[df.trial == 1, "modeled_j_per_inference"].item() == 4e-5
    assert math.isnan(df.loc[df.trial == 3, "energy_j_per_inference"].item())
    assert list(frontier_frame(_result()).trial) == [1, 0]


def test_markdown_names_best_saving_baseline_and_provenance() -> None:
    text = render_markdown(_result())
    assert "## Baseline" in text
    assert "**prune_channels(ratio=0.5)** (trial 1): 60% less energy" in text
    assert "0.50 points below the baseline" in text
    assert "| 1 | prune_channels(ratio=0.5) |" in text
    assert "estimated" in text
    assert "trial 3 (bf16): VariantError: boom" in text
    assert "watts_per_core: 7" in text


def test_write_report_writes_all_files_atomically(tmp_path: Path) -> None:
    paths = write_report(_result(), tmp_path / "out")
    assert set(paths) == {"trials.csv", "pareto.png", "report.md"}
    csv = pd.read_csv(paths["trials.csv"])
    assert len(csv) == 4
    assert paths["pareto.png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    leftovers = [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]
    assert leftovers == []
