"""Which parameters mattered, per objective (fANOVA), and the report's sentence about it."""

from __future__ import annotations

import optuna
import pytest
from tests_support import sample_result

from compresslab.report import render_markdown
from compresslab.study.importance import param_importances


def _study(n: int) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize", "minimize"])
    for i in range(n):
        ratio = (i % 7) / 7  # drives energy
        quant = ["none", "int8"][i % 2]  # drives accuracy
        trial = optuna.trial.create_trial(
            params={"prune_channels.ratio": ratio, "quantize": quant},
            distributions={
                "prune_channels.ratio": optuna.distributions.FloatDistribution(0.0, 1.0),
                "quantize": optuna.distributions.CategoricalDistribution(["none", "int8"]),
            },
            values=[0.99 - 0.05 * (quant == "int8"), 1.0 - 0.8 * ratio],
        )
        study.add_trial(trial)
    return study


@pytest.mark.slow
def test_each_objective_names_the_parameter_that_drives_it() -> None:
    got = param_importances(_study(20))
    assert got is not None
    assert max(got["energy"], key=got["energy"].get) == "prune_channels.ratio"
    assert max(got["accuracy"], key=got["accuracy"].get) == "quantize"
    assert abs(sum(got["energy"].values()) - 1) < 1e-6


def test_too_few_trials_say_nothing() -> None:
    assert param_importances(_study(4)) is None


def test_the_report_says_what_mattered() -> None:
    result = sample_result()
    result.info["importance"] = {
        "energy": {"prune_channels.ratio": 0.8, "quantize": 0.2},
        "accuracy": {"quantize": 0.7, "prune_channels.ratio": 0.3},
    }
    text = render_markdown(result)
    assert "Energy was driven most by prune_channels.ratio (80%)" in text
    assert "accuracy by quantize (70%)" in text and "parallel.png" in text
    assert "Too few measured variants" in render_markdown(sample_result())
