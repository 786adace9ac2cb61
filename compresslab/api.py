"""The public Python API (re-exported from :mod:`compresslab`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from compresslab.compress import check_space
from compresslab.recipe import Recipe, RecipeSource, parse_recipe, read_source
from compresslab.recipe import source_from_text as _source_from_text
from compresslab.results import SearchResult, TrialRecord


def _validated(source: RecipeSource) -> Recipe:
    recipe = parse_recipe(source)
    problems = check_space(recipe.compression)
    if problems:
        loc, message = problems[0]
        more = f" ({len(problems) - 1} more problem(s) after this one)" if len(problems) > 1 else ""
        raise source.error(loc, message + more)
    return recipe


def load_recipe(source: str | Path | Mapping[str, Any]) -> Recipe:
    """Load and fully validate a recipe from a YAML file path or a dict.

    Raises:
        RecipeError: the recipe is invalid; the message names the file, line, field and fix.
    """
    if isinstance(source, Mapping):
        import yaml

        return _validated(_source_from_text(yaml.safe_dump(dict(source)), path="<dict>"))
    return _validated(read_source(source))


def search(
    recipe: Recipe | str | Path,
    *,
    trials: int | None = None,
    storage: str | None = None,
    base_dir: Path | None = None,
    on_trial: Callable[[TrialRecord, int, int], None] | None = None,
    write_report: bool = True,
) -> SearchResult:
    """Run (or resume) a recipe's search and write its report.

    Args:
        recipe: a :class:`Recipe` or a path to its YAML.
        trials: number of completed trials to reach (default: the recipe's ``search.trials``).
        storage: Optuna storage URL (default: the recipe's, else SQLite under the report folder).
        base_dir: folder the recipe's relative ``output`` is resolved against.
        on_trial: progress callback ``(record, completed, target)``.
        write_report: write ``trials.csv``, ``pareto.png`` and ``report.md``.
    """
    from compresslab.report import write_report as _write
    from compresslab.search import run_search

    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    result = run_search(
        recipe, trials=trials, storage=storage, base_dir=base_dir, on_trial=on_trial
    )
    if write_report:
        _write(result, recipe.output_dir(base_dir))
    return result
