"""README.md tells the truth about the recipes it shows."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from compresslab.api import load_recipe

ROOT = Path(__file__).resolve().parent.parent


def _recipe_blocks() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Recipe format", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```yaml\n(.*?)```", section, flags=re.S)


def test_the_readme_shows_the_shipped_default_recipe_exactly() -> None:
    shipped = (ROOT / "recipes" / "digits.yaml").read_text(encoding="utf-8")
    assert _recipe_blocks()[0] == shipped


def test_the_readme_reference_recipe_is_valid(tmp_path: Path) -> None:
    reference = yaml.safe_load(_recipe_blocks()[1])
    reference["output"] = str(tmp_path)
    recipe = load_recipe(reference)
    assert recipe.name == "digits" and recipe.search.sampler == "auto"
    assert {m.method for m in recipe.compression} == {"prune_channels", "dynamic_int8", "bf16"}
