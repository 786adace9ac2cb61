"""A user's own task (an entrypoint written here) through a whole search."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from tests_support import FAST_ENERGY
from torch import nn

from compresslab.api import load_recipe, search

pytestmark = pytest.mark.slow

USER_MODULE = """
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from compresslab.tasks import Task, load_weights


class Mlp(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=gen)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 1).long()


def build(options: dict[str, Any]) -> Task:
    model = load_weights(Mlp(int(options["hidden"])), options["weights"])
    x_tr, y_tr = data(300, 1)
    x_te, y_te = data(200, 2)
    return Task(name="user-mlp", model=model, eval_inputs=x_te, eval_labels=y_te,
                num_classes=3, train_inputs=x_tr, train_labels=y_tr,
                description="an MLP loaded from safetensors")
"""


def test_user_entrypoint_recipe_runs_a_whole_search(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "user_task_e2e.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    import user_task_e2e as user

    # "Train" the user's model outside compresslab and save it as safetensors.
    torch.manual_seed(0)
    model = user.Mlp(32)
    x, y = user.data(600, 0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    save_file(model.state_dict(), str(tmp_path / "mlp.safetensors"))

    recipe_file = tmp_path / "user.yaml"
    recipe_file.write_text(
        textwrap.dedent(
            f"""
            name: user-mlp
            task:
              entrypoint: user_task_e2e:build
              options: {{hidden: 32, weights: {tmp_path / "mlp.safetensors"}}}
            compression:
              - method: prune_channels
                params: {{ratio: {{low: 0.2, high: 0.6, step: 0.2}}}}
              - method: dynamic_int8
            energy: {dict(FAST_ENERGY)}
            search: {{trials: 3, sampler: random, seed: 0}}
            output: {tmp_path / "reports"}
            """
        )
    )
    recipe = load_recipe(recipe_file)
    result = search(recipe)
    assert result.baseline is not None
    assert result.baseline_accuracy > 0.85  # the loaded weights, not a fresh init
    assert not result.failed, [t.error for t in result.failed]
    # Three distinct variants evaluated (a clearly too inaccurate one may be screened out
    # before its energy is measured); every measured one carries its provenance.
    assert sum(1 for t in result.trials if t.evaluated) == 3
    assert len(result.completed) >= 2
    assert all(t.energy and t.energy.provenance == "estimated" for t in result.completed)
    assert (recipe.output_dir() / "report.md").is_file()
    assert "an MLP loaded from safetensors" in (recipe.output_dir() / "report.md").read_text()
