from __future__ import annotations

import dataclasses
import math
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from tests_support import sample_result, with_evaluation

from compresslab.records import Confirmation, PairedRatio
from compresslab.report import frontier_frame, render_markdown, trials_frame, write_report
from compresslab.report.figures import energy_stars, hypervolume_curve, project, search_cost
from compresslab.report.table import COLUMNS


def test_trials_frame_has_every_column_and_marks_the_frontier() -> None:
    df = trials_frame(sample_result())
    assert list(df.columns[: len(COLUMNS)]) == COLUMNS
    assert "param.prune_channels.ratio" in df.columns
    assert df.loc[df.trial == 1, "pareto"].item()
    assert df.loc[df.trial == 0, "pareto"].item()
    assert not df.loc[df.trial == 2, "pareto"].item()  # infeasible: below the tolerance
    assert df.loc[df.trial == 1, "energy_ratio_vs_baseline"].item() == pytest.approx(0.4)
    assert df.loc[df.trial == 1, "ratio_ci95_low"].item() == pytest.approx(0.38)
    # On the baseline's scale: the ratio's interval times the baseline's 1 mJ.
    assert df.loc[df.trial == 1, "ci95_j_per_inference"].item() == pytest.approx(0.02e-3)
    assert df.loc[df.trial == 0, "ci95_j_per_inference"].item() == pytest.approx(1e-5)
    assert df.loc[df.trial == 1, "kwh_per_1k"].item() == 4e-4 * 1000 / 3.6e6
    assert df.loc[df.trial == 3, "error"].item() == "VariantError: boom"
    assert df.loc[df.trial == 1, "modeled_j_per_inference"].item() == 4e-5
    assert math.isnan(df.loc[df.trial == 3, "energy_j_per_inference"].item())
    assert list(frontier_frame(sample_result()).trial) == [1, 0]


def test_markdown_names_best_saving_baseline_and_provenance() -> None:
    text = render_markdown(sample_result())
    assert "## Baseline" in text
    assert "**prune_channels(ratio=0.5)** (trial 1): 2.50x less energy per inference" in text
    assert "as measured in the search (ratio 0.400, 95% CI 0.380 to 0.420" in text
    assert "not confirmed" in text
    assert "| 0.40x [0.38, 0.42] |" in text and "1x (reference)" in text
    assert "0.50 points below the baseline" in text
    assert "| 1 | prune_channels(ratio=0.5) |" in text
    # (The legend names every provenance: the rows must carry their own.)
    assert "1 ± 0.01 mJ per inference (estimated)" in text
    assert "| 0.40x [0.38, 0.42] | ★★★★☆ | estimated |" in text
    assert "trial 3 (bf16): VariantError: boom" in text
    assert "watts_per_core: 7" in text


def test_stars_projections_search_cost_and_break_even() -> None:
    result = sample_result()
    stars = energy_stars(result)
    # Measured energies 1e-3, 4e-4, 1e-4 J: five equal bands between 1e-4 and 1e-3.
    assert stars == {0: 1, 1: 4, 2: 5}
    p = project(result.trials[1], result)
    assert p is not None
    assert p.kwh_per_million == pytest.approx(4e-4 * 1e6 / 3.6e6)
    # 400 J per million: 1.11e-4 kWh, times PUE 1.2 and 55 g/kWh, and at 0.2 EUR/kWh.
    assert p.gco2e_per_million == pytest.approx(7.3333e-3, rel=1e-4)
    assert p.cost_per_million == pytest.approx(2.2222e-5, rel=1e-4)
    assert p.kwh_per_year == pytest.approx(4e-4 * 100 * 365.25 * 86400 / 3.6e6)
    cost = search_cost(result)
    assert cost is not None and cost.energy_j == 60.0 and cost.sessions == 2
    assert cost.saving_j_per_inference == pytest.approx(6e-4)
    assert cost.break_even_inferences == pytest.approx(60.0 / 6e-4)
    text = render_markdown(result)
    assert "pays the search back after 100,000 inferences" in text
    assert "EUR / year" in text and "★★★★☆" in text


def test_hypervolume_grows_with_better_variants() -> None:
    curve = hypervolume_curve(sample_result())
    assert [n for n, _ in curve] == [0, 1, 2]
    hv = [v for _, v in curve]
    assert hv[0] > 0 and hv[1] > hv[0]
    assert hv[2] == hv[1]  # trial 2 is infeasible: it adds nothing


def test_all_infeasible_study_still_reports_the_least_violating() -> None:
    result = sample_result()
    worse = [dataclasses.replace(t, feasible=False) if t.complete else t for t in result.trials]
    none_ok = dataclasses.replace(result, trials=worse)
    assert none_ok.frontier == []
    text = render_markdown(none_ok)
    assert "No measured variant is within the accuracy tolerance" in text
    assert "| 0 | baseline |" in text  # the most accurate one leads the least-violating table


def test_html_report_is_self_contained_and_escapes_recipe_strings(tmp_path: Path) -> None:
    result = sample_result()
    evil = [dataclasses.replace(t, variant="<script>alert(1)</script>") for t in result.trials]
    hostile = dataclasses.replace(result, recipe_name="<b>x</b>&", trials=evil)
    paths = write_report(hostile, tmp_path / "out")
    page = paths["report.html"].read_text()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;x&lt;/b&gt;&amp;" in page
    assert "data:image/png;base64," in page  # pictures inlined
    assert page.count("<table>") >= 2
    HTMLParser().feed(page)  # parses without an exception


def test_write_report_writes_all_files_atomically(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.md").write_text("stale")
    paths = write_report(sample_result(), out)
    assert set(paths) == {
        "trials.csv",
        "trials.parquet",
        "pareto.png",
        "pareto.html",
        "hypervolume.png",
        "report.md",
        "report.html",
        "parallel.png",
        "plotly.min.js",  # the first time only
    }
    assert paths["report.md"].read_text().startswith("# compresslab report: unit")
    csv = pd.read_csv(paths["trials.csv"])
    assert len(csv) == 4
    assert len(pd.read_parquet(paths["trials.parquet"])) == 4
    assert "plotly" in paths["pareto.html"].read_text()[:5000].lower()
    assert paths["pareto.png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    leftovers = [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_the_headline_states_the_confirmed_ratio_beside_the_search_figure() -> None:
    result = sample_result()
    confirmed = Confirmation(ratio=0.5, ci95_low=0.49, ci95_high=0.51, pairs=8)
    result.trials[1] = dataclasses.replace(result.trials[1], confirmed=confirmed)
    text = render_markdown(result)
    assert "confirmed after the search: 2.00x less energy per inference" in text
    assert "95% CI 0.490 to 0.510, 8 interleaved pairs); the search itself measured 0.400" in text
    df = trials_frame(result)
    assert df.loc[df.trial == 1, "confirmed_ratio"].item() == 0.5


def test_an_unpaired_trial_shows_no_ratio_across_sessions() -> None:
    result = sample_result()
    # A trial of a study from before pairing has no ratio (Evaluation.vs_baseline is None).
    unpaired = with_evaluation(result.trials[1], vs_baseline=None)
    result.trials[1] = dataclasses.replace(unpaired, baseline_j=None)
    df = trials_frame(result)
    assert pd.isna(df.loc[df.trial == 1, "energy_ratio_vs_baseline"].item())
    assert "| 1 | prune_channels(ratio=0.5) |" in render_markdown(result)
    assert "not paired with the baseline" in render_markdown(result)


def test_a_failure_while_writing_leaves_the_previous_report_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    import compresslab.report._write as report_write

    first = write_report(sample_result(), tmp_path)
    before = {name: path.read_bytes() for name, path in first.items()}
    grown = sample_result()
    grown.trials.append(dataclasses.replace(grown.trials[1], number=4))

    def disk_full(*_a: object, **_k: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(report_write, "hypervolume_plot", disk_full)
    with pytest.raises(OSError, match="No space left"):
        write_report(grown, tmp_path)
    after = {name: (tmp_path / name).read_bytes() for name in before}
    assert after == before  # every file still describes the same trials
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_the_interactive_plot_loads_plotly_written_once(tmp_path: Path) -> None:
    paths = write_report(sample_result(), tmp_path)
    page = paths["pareto.html"].read_text()
    assert '<script src="plotly.min.js"' in page or 'src="plotly.min.js"' in page
    assert paths["pareto.html"].stat().st_size < 100_000
    js = tmp_path / "plotly.min.js"
    stamp = js.stat().st_mtime_ns
    again = write_report(sample_result(), tmp_path)
    assert "plotly.min.js" not in again and js.stat().st_mtime_ns == stamp  # not rewritten


def test_trials_csv_carries_the_pairs_interval_and_the_ratio_term(tmp_path: Path) -> None:
    result = sample_result()
    vs = PairedRatio(
        ratio=0.4,
        ci95_low=0.36,
        ci95_high=0.44,
        pairs=6,
        ci95_low_pairs=0.38,
        ci95_high_pairs=0.42,
        ratio_repeatability_rel=0.09,
        ratio_repeatability_source="3 confirmation rounds of trial 3 of study digits",
    )
    result.trials[1] = with_evaluation(result.trials[1], vs_baseline=vs)
    csv = pd.read_csv(write_report(result, tmp_path)["trials.csv"])
    row = csv.loc[csv.trial == 1]
    assert row["ratio_ci95_low"].item() == 0.36 and row["ratio_ci95_high"].item() == 0.44
    assert row["ratio_ci95_low_pairs"].item() == 0.38
    assert row["ratio_ci95_high_pairs"].item() == 0.42
    assert row["ratio_repeatability_rel"].item() == 0.09
    assert row["ratio_repeatability_source"].item().startswith("3 confirmation rounds")
    # The interval a user sees is the widened one, on the baseline's scale too.
    assert trials_frame(result).loc[lambda d: d.trial == 1, "ci95_j_per_inference"].item() == (
        pytest.approx(0.04e-3)
    )
    assert "their intervals hold it in quadrature" in render_markdown(result)
    # A ratio measured before ratios were widened: its interval was the pairs' own.
    old = sample_result()
    df = trials_frame(old)
    assert df.loc[df.trial == 1, "ratio_ci95_low_pairs"].item() == pytest.approx(0.38)
    assert "pairs' interval only" in df.loc[df.trial == 1, "ratio_repeatability_source"].item()
    assert pd.isna(df.loc[df.trial == 0, "ratio_repeatability_source"].item())  # the baseline


def test_the_headline_says_what_the_paired_accuracy_decides() -> None:
    from compresslab.records import AccuracyVsBaseline

    result = sample_result()
    best = result.best_saving()
    assert best is not None
    assert "Accuracy against the baseline" not in render_markdown(result)  # not compared
    undecided = AccuracyVsBaseline(
        -0.0056, -0.0224, 0.0093, "newcombe-paired", "undecided", 360, 0.01, True,
        discordant_b=1, discordant_c=3, examples_to_decide=2758,
    )  # fmt: skip
    at = result.trials.index(best)
    result.trials[at] = dataclasses.replace(best, accuracy_vs_baseline=undecided)
    text = " ".join(render_markdown(result).split())
    assert "-0.56 points, 95% CI -2.24 to +0.93, paired on the same 360 examples" in text
    assert "undecided at the 1-point tolerance" in text and "2,758 examples" in text
    within = dataclasses.replace(undecided, low=-0.004, decision="within", examples_to_decide=None)
    result.trials[at] = dataclasses.replace(best, accuracy_vs_baseline=within)
    assert "within the 1-point tolerance." in " ".join(render_markdown(result).split())
