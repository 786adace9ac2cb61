"""Before the first trial, each method is checked against the task's model and data."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from tests_support import FAST_ENERGY

from compresslab.api import load_recipe, search
from compresslab.errors import RecipeError

pytestmark = pytest.mark.slow

# An MLP without training data: no attention for prune_heads, no data for recovery.
MLP_TASK = """
import torch
from torch import nn

from compresslab.tasks import Task


def build(options):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(80, 8, generator=gen)
    torch.manual_seed(0)
    layers = [nn.Linear(8, 3)] if options.get("head_only") else [
        nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3)]
    return Task(name="mlp", model=nn.Sequential(*layers).eval(), eval_inputs=x,
                eval_labels=(x[:, 0] > 0).long(), num_classes=3)
"""


@pytest.fixture
def mlp_recipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    (tmp_path / "mlp_task_applicable.py").write_text(MLP_TASK)
    monkeypatch.syspath_prepend(str(tmp_path))

    def make(compression: list[Any], trials: int = 3, **options: Any) -> Any:
        return load_recipe(
            {
                "name": "mlp",
                "task": {"entrypoint": "mlp_task_applicable:build", "options": options},
                "compression": compression,
                "energy": {**FAST_ENERGY, "batch_size": 16},
                "search": {
                    "trials": trials,
                    "sampler": "random",
                    "screen_examples": 0,
                    "confirm_pairs": 0,
                },
                "output": str(tmp_path / "reports"),
            }
        )

    return make


def test_a_method_that_cannot_apply_is_a_bad_recipe_before_any_trial(mlp_recipe: Any) -> None:
    recipe = mlp_recipe([{"method": "dynamic_int8"}, {"method": "prune_heads"}])
    with pytest.raises(RecipeError) as info:
        search(recipe)
    assert info.value.exit_code == 2
    assert str(info.value) == (
        "field 'compression.1.method': prune_heads cannot apply to this task's model and data: "
        "prune_heads needs a BERT-style encoder (attention modules with query, key, value and "
        "num_attention_heads) and found none in Sequential: use prune_channels; or remove it "
        "from `compression`"
    )
    assert not (recipe.output_dir() / "report.md").exists()


def test_values_that_cannot_apply_are_left_out_and_said(
    mlp_recipe: Any, caplog: pytest.LogCaptureFixture
) -> None:
    recipe = mlp_recipe(
        [
            {
                "method": "prune_channels",
                "params": {
                    "ratio": {"choices": [0.25, 0.5]},
                    "recovery_epochs": {"choices": [0, 5]},
                },
            }
        ]
    )
    with caplog.at_level(logging.WARNING):
        result = search(recipe)
    # Without the check, every trial drawing recovery_epochs=5 failed.
    assert result.failed == []
    assert all(t.params.get("prune_channels.recovery_epochs", 0) == 0 for t in result.trials)
    assert any(
        "left out of the search for this model: prune_channels.recovery_epochs=5" in r.getMessage()
        for r in caplog.records
    )
    report = (recipe.output_dir() / "report.md").read_text()
    assert "## Left out for this model and data" in report
    assert "prune_channels.recovery_epochs=5: recovery_epochs &gt; 0 needs training data" in report
    assert result.info["left_out"] == {
        "prune_channels.recovery_epochs=5": (
            "recovery_epochs > 0 needs training data, and this task provides none: set "
            "recovery_epochs to 0, or return train_inputs/train_labels from the task"
        )
    }


def test_a_failed_trial_is_logged_once(mlp_recipe: Any, caplog: pytest.LogCaptureFixture) -> None:
    # The only linear layer is the classifier: sparsity has nothing to sparsify and fails.
    recipe = mlp_recipe([{"method": "sparsity"}], trials=2, head_only=True)
    with caplog.at_level(logging.INFO):
        result = search(recipe)
    assert result.failed
    for trial in result.failed:
        said = [
            r.getMessage()
            for r in caplog.records
            if r.levelno >= logging.WARNING
            and (
                f"trial {trial.number} " in r.getMessage()
                or f"Trial {trial.number} " in r.getMessage()
            )
        ]
        assert len(said) == 1, said
        assert "found no convolution or linear layer" in said[0]
