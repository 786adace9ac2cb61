from __future__ import annotations

from pathlib import Path

import pytest

from compresslab.api import load_recipe
from compresslab.errors import RecipeError

GOOD = """\
name: ok
task:
  name: digits
compression:
  - method: prune_channels
    params:
      ratio: {low: 0.1, high: 0.5, step: 0.1}
      importance: {choices: [l1, l2]}
  - method: dynamic_int8
search:
  trials: 3
  tolerance: {relative: 0.02}
"""


def write(tmp_path: Path, text: str, name: str = "r.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_shipped_digits_recipe_loads(repo: Path) -> None:
    recipe = load_recipe(repo / "recipes" / "digits.yaml")
    assert recipe.name == "digits"
    assert recipe.task.name == "digits"
    assert [m.method for m in recipe.compression] == ["prune_channels", "dynamic_int8", "bf16"]
    assert recipe.energy.sampler == "auto"
    assert recipe.search.tolerance.absolute == 0.02  # the finest 360 images decide


def test_good_recipe_and_defaults(tmp_path: Path) -> None:
    recipe = load_recipe(write(tmp_path, GOOD))
    assert recipe.search.trials == 3
    assert recipe.search.sampler == "auto"  # the documented default
    assert recipe.energy.batch_size == 64
    assert recipe.search.tolerance.min_accuracy(0.9) == pytest.approx(0.9 * 0.98)
    assert recipe.output_dir(tmp_path) == tmp_path / "reports" / "ok"


def test_recipe_from_dict() -> None:
    recipe = load_recipe(
        {"name": "d", "task": {"name": "digits"}, "compression": [{"method": "bf16"}]}
    )
    assert recipe.compression[0].method == "bf16"


BAD = [
    # (yaml text, expected line, expected fragments)
    (
        "name: x\ntask: {name: digits}\ncompression: [{method: bf16}]\nsurprise: 1\n",
        4,
        ["unknown key 'surprise'", "remove it"],
    ),
    (
        "name: x\ntask: {name: digits}\ncompression:\n  - method: quantum\n",
        4,
        ["unknown method 'quantum'", "prune_channels"],
    ),
    (
        "name: x\ntask: {name: digits}\ncompression:\n  - method: prune_channels\n"
        "    params:\n      ratio: 1.5\n",
        6,
        ["ratio", "above the maximum 0.95"],
    ),
    (
        "name: x\ntask: {name: digits}\ncompression:\n  - method: prune_channels\n"
        "    params:\n      ratioo: 0.5\n",
        6,
        ["no parameter 'ratioo'", "ratio"],
    ),
    (
        "name: x\ntask: {name: digits}\ncompression:\n  - method: prune_channels\n"
        "    params:\n      importance: {choices: [l1, magic]}\n",
        6,
        ["'magic' is not one of"],
    ),
    (
        "name: x\ntask: {name: digits}\ncompression:\n  - method: prune_channels\n"
        "    params:\n      ratio: {low: 0.6, high: 0.2}\n",
        6,
        ["swap them"],
    ),
    (
        "name: x\ntask: {name: digits, entrypoint: 'a.b:c'}\ncompression: [{method: bf16}]\n",
        2,
        ["exactly one of `name`"],
    ),
    (
        "name: x\ntask: {name: digits}\ncompression: [{method: bf16}]\n"
        "energy:\n  sampler: wattmeter\n",
        5,
        ["energy.sampler", "auto", "rapl"],
    ),
    (
        "name: x\ntask: {name: digits}\ncompression: [{method: bf16}]\n"
        "energy:\n  batch_size: many\n",
        5,
        ["energy.batch_size", "integer"],
    ),
    (
        "name: x\ntask: {name: digits}\ncompression: [{method: bf16}]\n"
        "search:\n  tolerance: {absolute: 0.01, relative: 0.1}\n",
        5,
        ["exactly one of `absolute`"],
    ),
    (
        "name: x\ntask: {name: digits}\ncompression: [{method: bf16}]\n"
        "energy: {min_windows: 5, max_windows: 3}\n",
        4,
        ["max_windows (3) is below"],
    ),
    ("name: x\ntask: {name: digits}\n", 1, ["compression", "add it"]),
    ("name: x\ntask: {name: digits}\ncompression: []\n", 3, ["compression", "at least 1"]),
    ("name: x\ntask:\n  name: digits\n   metric: accuracy\n", 4, ["invalid YAML"]),
    ("", 1, ["empty"]),
    ("- just\n- a list\n", 1, ["must be a mapping"]),
    ("name: 'bad name!'\ntask: {name: digits}\ncompression: [{method: bf16}]\n", 1, ["name"]),
]


@pytest.mark.parametrize(("text", "line", "fragments"), BAD)
def test_bad_recipes_name_file_line_field_and_fix(
    tmp_path: Path, text: str, line: int, fragments: list[str]
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: "), message
    for fragment in fragments:
        assert fragment in message, message
    assert info.value.exit_code == 2


def test_missing_recipe_file_says_where_recipes_live(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="recipes/digits.yaml"):
        load_recipe(tmp_path / "nope.yaml")


def test_yaml_tags_are_not_executed(tmp_path: Path) -> None:
    path = write(tmp_path, "name: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(RecipeError, match="tag '!!python/object/apply:os.system' is not allowed"):
        load_recipe(path)
