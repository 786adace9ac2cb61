"""Which optional extras of compresslab a recipe needs (for CI set-up, before installing them).

Read from the recipe's YAML alone, without validating it or importing any task or method (so
it answers before torch or the extras are installed).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: Built-in tasks that need an extra (the rest need only compresslab's own dependencies).
TASK_EXTRAS = {"minilm-wordnet": "models"}
#: Compression methods by name prefix that need an extra.
METHOD_EXTRAS = {"torchao_": "torchao"}


def recipe_extras(recipe: Mapping[str, Any] | Path) -> list[str]:
    """The extras a recipe needs, sorted (e.g. ``["models"]``; empty when none).

    Args:
        recipe: the recipe's YAML file, or its data as loaded.
    """
    if isinstance(recipe, Path):
        import yaml

        loaded = yaml.safe_load(recipe.read_text(encoding="utf-8"))
        recipe = loaded if isinstance(loaded, Mapping) else {}
    needed: set[str] = set()
    task = recipe.get("task")
    if isinstance(task, Mapping) and task.get("name") in TASK_EXTRAS:
        needed.add(TASK_EXTRAS[task["name"]])
    for step in recipe.get("compression") or []:
        method = step.get("method") if isinstance(step, Mapping) else None
        for prefix, extra in METHOD_EXTRAS.items():
            if isinstance(method, str) and method.startswith(prefix):
                needed.add(extra)
    return sorted(needed)


def extra_requirements(extras: list[str]) -> list[str]:
    """The pip requirements the installed compresslab declares for ``extras``.

    Read from the installed distribution's metadata, so the answer fits however compresslab
    was installed (a git URL, a wheel, a checkout) and needs no package index to name it.

    Raises:
        UsageError: compresslab is not installed as a distribution (only on ``sys.path``).
    """
    import importlib.metadata
    import re

    from compresslab.errors import UsageError

    if not extras:
        return []
    try:
        declared = importlib.metadata.requires("compresslab") or []
    except importlib.metadata.PackageNotFoundError:
        raise UsageError(
            "compresslab is not installed as a package here, so its extras cannot be read: "
            f"install it with pip, or install the extras {', '.join(extras)} by hand"
        ) from None
    out = []
    for line in declared:
        requirement, _, marker = line.partition(";")
        found = re.search(r"""extra\s*==\s*["']([^"']+)["']""", marker)
        if found and found.group(1) in extras:
            out.append(requirement.strip())
    return out
