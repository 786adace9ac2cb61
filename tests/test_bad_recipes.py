"""A corpus of malformed recipes: each is rejected before any work, in one sentence.

Every case goes through :func:`compresslab.api.load_recipe` (what ``compresslab search``
calls first): a :class:`RecipeError` (exit code 2) whose message starts with the file and
line, names the field and says how to fix it. A handful of them also go through the real
command line, in parallel: exit code 2, one line on stderr, no traceback, and no report
folder or study database left behind.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import pytest
from tests_support import finish, start_cli

from compresslab.api import load_recipe
from compresslab.errors import RecipeError

# name, task and a one-method compression: a valid recipe on lines 1-3.
OK = "name: x\ntask: {name: digits}\ncompression: [{method: bf16}]\n"


class Bad(NamedTuple):
    id: str
    text: str
    line: int
    field: str | None
    fragments: tuple[str, ...]


CASES = [
    # --- not a recipe at all
    Bad(
        "invalid-yaml",
        "name: x\ntask:\n  name: digits\n   metric: accuracy\n",
        4,
        None,
        ("invalid YAML", "fix the syntax"),
    ),
    Bad("empty-file", "", 1, None, ("empty", "recipes/digits.yaml")),
    Bad("only-comments", "# nothing here\n", 1, None, ("empty", "start from")),
    Bad("a-list", "- just\n- a list\n", 1, None, ("must be a mapping", "name, task, compression")),
    Bad(
        "python-tag",
        "name: !!python/object/apply:os.system ['true']\n",
        1,
        None,
        ("tag '!!python/object/apply:os.system' is not allowed", "plain data", "remove the tag"),
    ),
    # --- unknown keys, at several levels
    Bad(
        "unknown-top-key",
        OK + "surprise: 1\n",
        4,
        "surprise",
        ("unknown key 'surprise'", "remove it"),
    ),
    Bad(
        "unknown-task-key",
        "name: x\ntask: {name: digits, model: cnn}\ncompression: [{method: bf16}]\n",
        2,
        "task.model",
        ("unknown key 'model'",),
    ),
    Bad(
        "unknown-method-key",
        "name: x\ntask: {name: digits}\ncompression:\n  - method: bf16\n    ratio: 0.5\n",
        5,
        "compression.0.ratio",
        ("unknown key 'ratio'",),
    ),
    Bad(
        "unknown-energy-key",
        OK + "energy:\n  window: 1.0\n",
        5,
        "energy.window",
        ("unknown key 'window'", "did you mean 'window_s'?"),
    ),
    Bad(
        "unknown-nested-key",
        OK + "energy:\n  estimate:\n    watts: 5\n",
        6,
        "energy.estimate.watts",
        ("unknown key 'watts'",),
    ),
    Bad(
        "unknown-tolerance-key",
        OK + "search:\n  tolerance: {abs: 0.01}\n",
        5,
        "search.tolerance.abs",
        ("unknown key 'abs'",),
    ),
    Bad(
        "unknown-task-option",
        "name: x\ntask:\n  name: digits\n  options: {epoch: 3}\ncompression: [{method: bf16}]\n",
        4,
        "task.options.epoch",
        ("no option 'epoch'", "epochs"),
    ),
    # --- wrong types
    Bad(
        "batch-size-text",
        OK + "energy:\n  batch_size: many\n",
        5,
        "energy.batch_size",
        ("integer",),
    ),
    Bad("trials-list", OK + "search:\n  trials: [1, 2]\n", 5, "search.trials", ("integer",)),
    Bad(
        "compression-scalar",
        "name: x\ntask: {name: digits}\ncompression: bf16\n",
        3,
        "compression",
        ("list",),
    ),
    # --- out of range
    Bad(
        "ci-above-one",
        OK + "energy:\n  target_ci_rel: 1.5\n",
        5,
        "energy.target_ci_rel",
        ("1.5 must be below 1", "valid: number in (0, 1)"),
    ),
    Bad(
        "zero-trials",
        OK + "search:\n  trials: 0\n",
        5,
        "search.trials",
        ("0 is below the minimum 1", "valid: integer in [1, 100000]"),
    ),
    Bad(
        "ratio-too-high",
        "name: x\ntask: {name: digits}\ncompression:\n"
        "  - method: prune_channels\n    params:\n      ratio: 1.5\n",
        6,
        "compression.0.params.ratio",
        ("above the maximum 0.95", "valid:"),
    ),
    Bad(
        "unknown-device",
        OK + "energy:\n  device: tpu\n",
        5,
        "energy.device",
        ("'tpu'", "use cpu, cuda or cuda:N"),
    ),
    # --- unknown names
    Bad(
        "unknown-method",
        "name: x\ntask: {name: digits}\ncompression:\n  - method: quantum\n",
        4,
        "compression.0.method",
        ("unknown method 'quantum'", "prune_channels"),
    ),
    Bad(
        "unknown-search-sampler",
        OK + "search:\n  sampler: cmaes\n",
        5,
        "search.sampler",
        ("nsga2", "use one of the values listed"),
    ),
    Bad(
        "unknown-energy-sampler",
        OK + "energy:\n  sampler: wattmeter\n",
        5,
        "energy.sampler",
        ("rapl", "estimate"),
    ),
    Bad(
        "unknown-method-param",
        "name: x\ntask: {name: digits}\ncompression:\n"
        "  - method: prune_channels\n    params:\n      ratioo: 0.5\n",
        6,
        "compression.0.params.ratioo",
        ("no parameter 'ratioo'", "ratio"),
    ),
    Bad(
        "unknown-choice",
        "name: x\ntask: {name: digits}\ncompression:\n"
        "  - method: prune_channels\n    params:\n      importance: {choices: [l1, magic]}\n",
        6,
        "compression.0.params.importance",
        ("'magic' is not one of",),
    ),
    Bad(
        "unknown-task",
        "name: x\ntask: {name: imagenet}\ncompression: [{method: bf16}]\n",
        2,
        "task.name",
        ("unknown task 'imagenet'", "digits", "entrypoint"),
    ),
    Bad(
        "unknown-region",
        OK + "carbon:\n  region: ATLANTIS\n",
        4,
        "carbon",
        ("ATLANTIS", "intensity_g_per_kwh"),
    ),
    # --- contradictions
    Bad(
        "min-above-max-windows",
        OK + "energy: {min_windows: 5, max_windows: 3}\n",
        4,
        "energy",
        ("max_windows (3) is below",),
    ),
    Bad(
        "both-tolerances",
        OK + "search:\n  tolerance: {absolute: 0.01, relative: 0.1}\n",
        5,
        "search.tolerance",
        ("exactly one of `absolute`",),
    ),
    Bad(
        "name-and-entrypoint",
        "name: x\ntask: {name: digits, entrypoint: 'a.b:c'}\ncompression: [{method: bf16}]\n",
        2,
        "task",
        ("exactly one of `name`",),
    ),
    Bad(
        "range-low-above-high",
        "name: x\ntask: {name: digits}\ncompression:\n"
        "  - method: prune_channels\n    params:\n      ratio: {low: 0.6, high: 0.2}\n",
        6,
        "compression.0.params.ratio",
        ("swap them",),
    ),
    Bad(
        "range-step-and-log",
        "name: x\ntask: {name: digits}\ncompression:\n"
        "  - method: prune_channels\n    params:\n"
        "      ratio: {low: 0.1, high: 0.5, step: 0.1, log: true}\n",
        6,
        "compression.0.params.ratio",
        ("drop one",),
    ),
    Bad(
        "method-twice",
        "name: x\ntask: {name: digits}\ncompression:\n  - method: bf16\n  - method: bf16\n",
        5,
        "compression.1.method",
        ("listed twice", "merge"),
    ),
    # --- missing things
    Bad("missing-compression", "name: x\ntask: {name: digits}\n", 1, "compression", ("add it",)),
    Bad(
        "empty-compression",
        "name: x\ntask: {name: digits}\ncompression: []\n",
        3,
        "compression",
        ("at least 1",),
    ),
    Bad(
        "bad-name",
        "name: 'bad name!'\ntask: {name: digits}\ncompression: [{method: bf16}]\n",
        1,
        "name",
        ("'bad name!' is not of the expected form", "letters, digits"),
    ),
    Bad(
        "malformed-entrypoint",
        "name: x\ntask: {entrypoint: no_colon_here}\ncompression: [{method: bf16}]\n",
        2,
        "task.entrypoint",
        ("'no_colon_here'", "`package.module:function`"),
    ),
    Bad(
        "missing-entrypoint-module",
        "name: x\ntask:\n  entrypoint: no_such_pkg_zz.tasks:build\ncompression: [{method: bf16}]\n",
        3,
        "task.entrypoint",
        ("no_such_pkg_zz.tasks", "make it importable"),
    ),
    Bad(
        "missing-data-dir",
        "name: x\ntask:\n  name: fashion-mnist\n"
        "  options: {data_dir: /nonexistent/fashion}\ncompression: [{method: bf16}]\n",
        4,
        "task.options.data_dir",
        ("/nonexistent/fashion does not exist", "remove the option"),
    ),
    Bad(
        "missing-wordnet-path",
        "name: x\ntask:\n  name: minilm-wordnet\n  options:\n"
        "    wordnet_path: /nonexistent/wordnet\ncompression: [{method: bf16}]\n",
        5,
        "task.options.wordnet_path",
        ("/nonexistent/wordnet does not exist",),
    ),
    Bad(
        "bad-storage-scheme",
        OK + "search:\n  storage: mongodb://localhost/studies\n",
        5,
        "search.storage",
        ("unsupported storage URL", "postgresql://", "journal:"),
    ),
    Bad(
        "in-memory-sqlite-storage",
        OK + "search:\n  storage: 'sqlite:///:memory:'\n",
        5,
        "search.storage",
        ("in memory", "vanishes when the command ends", "use a file path"),
    ),
]

#: Run through the real command line too (one of each kind of check).
CLI_CASES = {
    "invalid-yaml",
    "unknown-nested-key",
    "missing-entrypoint-module",
    "missing-data-dir",
    "bad-storage-scheme",
    "in-memory-sqlite-storage",
}


def write(tmp_path: Path, case: Bad) -> Path:
    path = tmp_path / f"{case.id}.yaml"
    text = case.text
    if "output:" not in text and text.startswith("name:"):
        # Reports would go here: the CLI must not create them.
        text += f"output: {tmp_path / 'reports'}\n"
    path.write_text(text)
    return path


def test_the_corpus_is_large_and_its_ids_unique() -> None:
    assert len(CASES) >= 20
    assert len({c.id for c in CASES}) == len(CASES)
    assert {c.id for c in CASES} >= CLI_CASES


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_recipe_names_file_line_field_and_fix(tmp_path: Path, case: Bad) -> None:
    path = write(tmp_path, case)
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    message = str(info.value)
    assert info.value.exit_code == 2
    assert message.startswith(f"{path}:{case.line}: "), message
    if case.field is not None:
        assert f"field '{case.field}': " in message, message
    for fragment in case.fragments:
        assert fragment in message, message
    assert "\n" not in message, "one sentence on one line"


@pytest.mark.slow
def test_bad_recipes_exit_2_through_the_cli_before_any_work(tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "200"}
    runs = {}
    for case in CASES:
        if case.id in CLI_CASES:
            path = write(tmp_path, case)
            runs[case.id] = (path, start_cli(["search", str(path)], cwd=tmp_path, env=env))
    for case_id, (path, proc) in runs.items():
        rc, _, stderr = finish(proc, timeout_s=120)
        assert rc == 2, (case_id, stderr)
        assert "Traceback" not in stderr, (case_id, stderr)
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {path}:"), (case_id, stderr)
    assert not (tmp_path / "reports").exists()
    assert not list(tmp_path.rglob("*.db")) and not list(tmp_path.rglob("*.log"))
