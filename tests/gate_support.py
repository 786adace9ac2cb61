"""A user-like repository for the gate's tests: its own model package, recipe and git history.

``mymodels/net.py`` is the user's code. ``slow=True`` rewrites its ``forward`` to do the two
hidden layers' work twice (through ``F.linear`` on the same weights, averaged): about twice
the time per batch, the same outputs, and no new layer, so the modeled tier, which counts
layer calls, does not see it.

``planted_repo`` is the same package with a planted pool (``mymodels.planted:build``): the
examples whose last feature is 1 are *marked*, and :func:`set_flipped` rewrites ``forward`` to
negate the logits of exactly those (its answer becomes the class it ranked last). Of the
marked examples, ``helped`` are labelled with that last-ranked class (the plain model gets
them wrong, the flipped one right) and ``hurt`` with its first (right, then wrong): the flipped
model's accuracy differs from the plain one's by exactly ``(helped - hurt) / pool``.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import yaml
from tests_support import run_cli

NET = '''"""The user's model."""

import torch
import torch.nn.functional as F
from torch import nn


class Net(nn.Module):
    def __init__(self, features: int = 64, hidden: int = 384, classes: int = 10) -> None:
        super().__init__()
        self.fc1 = nn.Linear(features, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.fc2(torch.relu(self.fc1(x))))
{extra}        return self.out(h)
'''
#: The planted flip: the marked examples' logits negated (the last-ranked class wins).
FLIPPED = "return torch.where(x[:, -1:] > 0.5, -self.out(h), self.out(h))"

PLANTED = '''"""A planted pool: the marked examples are those whose last feature is 1."""

import torch

from compresslab.tasks import Task

from mymodels.net import Net


def build(options: dict) -> Task:
    torch.manual_seed(0)
    model = Net(hidden=64).eval()
    pool, helped, hurt = int(options["pool"]), int(options["helped"]), int(options["hurt"])
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(pool, 64, generator=gen)
    x[:, -1] = 0.0
    marked = torch.arange(helped + hurt) * (pool // (helped + hurt))  # spread over the pool
    x[marked, -1] = 1.0
    with torch.no_grad():  # the plain model's logits, whatever forward does today
        logits = model.out(torch.relu(model.fc2(torch.relu(model.fc1(x)))))
    y = logits.argmax(dim=1)
    y[marked[:helped]] = logits[marked[:helped]].argmin(dim=1)
    return Task(name="planted", model=model, eval_inputs=x, eval_labels=y, num_classes=10)
'''

SLOW = """        again = torch.relu(F.linear(x, self.fc1.weight, self.fc1.bias))
        again = torch.relu(F.linear(again, self.fc2.weight, self.fc2.bias))
        h = (h + again) / 2
"""

TASKS = '''"""The compresslab task of this repository."""

import torch

from compresslab.tasks import Task

from mymodels.net import Net


def build(options: dict) -> Task:
    torch.manual_seed(0)
    model = Net(hidden=int(options.get("hidden", 384))).eval()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(240, 64, generator=gen)
    with torch.no_grad():
        y = model(x).argmax(dim=1)  # labels the model gets right: accuracy 1.0
    return Task(name="mine", model=model, eval_inputs=x, eval_labels=y, num_classes=10)
'''

#: Short windows, enough pairs that a 2x change lies far outside the interval.
ENERGY = {
    "sampler": "estimate",
    "batch_size": 64,
    "warmup_s": 0.1,
    "window_s": 0.1,
    "min_windows": 2,
    "max_windows": 2,
}
CHECK = {"pairs": 8, "retry_pairs": 16, "max_accuracy_drop": 0.02}


def set_slow(repo: Path, slow: bool) -> None:
    """Write the user's ``net.py``: plain, or with the forward's work done twice."""
    (repo / "mymodels" / "net.py").write_text(NET.replace("{extra}", SLOW if slow else ""))


def set_flipped(repo: Path, flipped: bool) -> None:
    """Write the user's ``net.py``: plain, or answering the marked examples' last class."""
    net = NET.replace("{extra}", "")
    if flipped:
        net = net.replace("return self.out(h)", FLIPPED)
    (repo / "mymodels" / "net.py").write_text(net)


def forget_imports() -> None:
    """Forget the imported ``mymodels`` (a test in this process then imports today's code)."""
    for name in [m for m in sys.modules if m == "mymodels" or m.startswith("mymodels.")]:
        del sys.modules[name]
    importlib.invalidate_caches()


def planted_repo(
    root: Path,
    *,
    pool: int,
    helped: int,
    hurt: int,
    check: dict[str, object] | None = None,
    energy: dict[str, object] | None = None,
) -> Path:
    """A repository (no git) whose recipe ``recipes/planted.yaml`` evaluates a planted pool.

    ``check`` and ``energy`` update :data:`CHECK` and the recipe's energy settings; the energy
    is the modeled tier by default (deterministic and untimed: the gate then compares no
    energy, and says why).
    """
    repo = user_repo(root, git=False)
    (repo / "mymodels" / "planted.py").write_text(PLANTED)
    recipe = {
        "name": "planted",
        "task": {
            "entrypoint": "mymodels.planted:build",
            "options": {"pool": pool, "helped": helped, "hurt": hurt},
        },
        "compression": [{"method": "dynamic_int8"}],
        "energy": {**ENERGY, "sampler": "model", **(energy or {})},
        # The flip's elementwise work is counted: the structural check is not what is tested.
        "check": {**CHECK, "modeled_max_increase": 0.1, **(check or {})},
        "output": "reports",
    }
    (repo / "recipes" / "planted.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    return repo


def user_repo(root: Path, *, git: bool = True) -> Path:
    """A repository with ``mymodels/`` and ``recipes/model.yaml`` (committed when ``git``)."""
    root.mkdir(parents=True, exist_ok=True)
    pkg = root / "mymodels"
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "tasks.py").write_text(TASKS)
    set_slow(root, False)
    recipe = {
        "name": "mymodel",
        "task": {"entrypoint": "mymodels.tasks:build", "options": {"hidden": 384}},
        "compression": [{"method": "dynamic_int8"}],
        "energy": ENERGY,
        "check": CHECK,
        "output": "reports",
    }
    (root / "recipes").mkdir(exist_ok=True)
    (root / "recipes" / "model.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    (root / ".gitignore").write_text("reports/\n__pycache__/\n")
    if git:
        run_git(root, "init", "-q", "-b", "main")
        commit(root, "the model")
    return root


def run_git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }
    proc = subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True
    )
    return proc.stdout.strip()


def commit(repo: Path, message: str) -> None:
    run_git(repo, "add", "-A")
    run_git(repo, "commit", "-q", "-m", message)


def cli(repo: Path, *args: str, extra_env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    """``python -m compresslab ARGS`` in ``repo``, with the repository on PYTHONPATH."""
    here = str(Path(__file__).resolve().parents[1])
    path = os.pathsep.join(filter(None, [str(repo), here, os.environ.get("PYTHONPATH")]))
    return run_cli(*args, cwd=repo, env={"PYTHONPATH": path, **(extra_env or {})})
