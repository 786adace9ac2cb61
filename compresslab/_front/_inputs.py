"""What a caller hands the public functions, checked before any work: recipes, budgets, places.

Every public function that takes a recipe takes it in any of three forms (a path to its YAML,
a mapping, a :class:`~compresslab.recipe.Recipe`) through :func:`load_recipe`, the one place
that reads and validates one. A bad argument is an :class:`InvalidArgumentError` whose
message names the argument as the function does (the command line rewords it for its flag).
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import yaml

from compresslab.errors import InvalidArgumentError, RecipeError
from compresslab.recipe import Recipe, RecipeSource, parse_recipe, read_source, storage_problem
from compresslab.recipe import source_from_text as _source_from_text

if TYPE_CHECKING:
    from compresslab.records import SearchResult

#: A recipe as a caller may give it: a path to its YAML, the recipe as a mapping, or a Recipe.
RecipeLike: TypeAlias = "Recipe | str | os.PathLike[str] | Mapping[str, Any]"

#: A stored study as a caller may name it: a recipe, a report folder, a ``.db`` file, a URL.
StudyPlace: TypeAlias = "RecipeLike | SearchResult"


def load_recipe(source: RecipeLike) -> Recipe:
    """Load and fully validate a recipe: a path to its YAML, a mapping, or a :class:`Recipe`.

    A :class:`Recipe` is returned as it is (it was validated when it was made).

    Raises:
        RecipeError: the recipe is invalid; the message names the file, line, field and fix
            of every problem, one per line.
        TypeError: ``source`` is none of the three.
    """
    if isinstance(source, Recipe):
        return source
    if isinstance(source, Mapping):
        return _validated(_source_from_text(_dict_text(source), path="<dict>"))
    if isinstance(source, str | os.PathLike):
        return _validated(read_source(Path(source)))
    raise TypeError(
        f"a recipe is a path to its YAML, a mapping or a Recipe, not {type(source).__name__}"
    )


def is_recipe(source: object) -> bool:
    """Whether ``source`` is a recipe (a Recipe, a mapping, a ``.yaml``/``.yml`` path)."""
    if isinstance(source, Recipe | Mapping):
        return True
    return isinstance(source, str | os.PathLike) and Path(source).suffix in (".yaml", ".yml")


def check_trials(trials: int | None) -> None:
    """Refuse a budget of distinct variants outside the recipe's allowed range."""
    from compresslab.recipe import SearchSpec

    high = next(m.le for m in SearchSpec.model_fields["trials"].metadata if hasattr(m, "le"))
    if trials is not None and (
        isinstance(trials, bool)
        or not isinstance(trials, numbers.Integral)
        or not 1 <= trials <= high
    ):
        raise InvalidArgumentError(
            f"trials must be an integer in [1, {high}] (distinct variants to reach), "
            f"got {trials!r}",
            argument="trials",
        )


def check_storage(storage: str | None) -> None:
    """Refuse a storage URL no study can live in (an in-memory SQLite, an unknown scheme)."""
    problem = storage_problem(storage) if storage is not None else None
    if problem:
        raise InvalidArgumentError(f"storage: {problem}; see docs/fleet.md", argument="storage")


def stored_result(
    place: StudyPlace, *, study_name: str | None = None, base_dir: Path | None = None
) -> SearchResult:
    """The search result of a stored study, named as :func:`compresslab.compare` allows.

    Args:
        place: a :class:`SearchResult` (returned as it is); a recipe (its study, in its
            storage); a report folder holding ``study.db``, a ``.db`` file or a storage URL (the
            study with the recipe it stored).
        study_name: the study to read when ``place`` is a storage holding several.
        base_dir: folder a recipe's relative ``output`` is resolved against.
    """
    from compresslab.records import SearchResult
    from compresslab.study import load_result, load_stored_result

    if isinstance(place, SearchResult):
        return place
    if is_recipe(place):
        return load_result(load_recipe(place), base_dir=base_dir)
    if not isinstance(place, str | os.PathLike):
        raise TypeError(
            "a study is a Study, a recipe (path, mapping or Recipe), a report folder, a .db "
            f"file or a storage URL, not {type(place).__name__}"
        )
    location = place if isinstance(place, str) else Path(place)
    return load_stored_result(location, study_name=study_name)


# --- a recipe's full check ------------------------------------------------------------------


def _validated(source: RecipeSource) -> Recipe:
    """The recipe, checked in full before any work; every problem found is raised at once."""
    recipe = parse_recipe(source)  # the form first: a malformed recipe never imports torch
    # The registries of methods and tasks import torch: loaded here, not with the package.
    from compresslab.compress import check_space
    from compresslab.energy.cuda import device_problem
    from compresslab.errors import TaskError
    from compresslab.tasks import check_task, resolve_entrypoint

    # A GPU torch cannot reach is refused here, before a task loads (a CPU-only torch build,
    # no device N): otherwise the model would run on the CPU while an idle GPU is measured.
    device = device_problem(recipe.energy.device)
    if device is not None:
        raise source.error(("energy", "device"), device)
    space = check_space(recipe.compression)
    problems = space + check_task(recipe.task) + _thread_problems(recipe)
    if not space:
        problems += _grid_problems(recipe)
    if problems:
        errors = [source.error(loc, message) for loc, message in problems]
        raise RecipeError.combine(sorted(errors, key=lambda e: e.line or 0))
    if recipe.task.entrypoint is not None:
        # Only now, with nothing else wrong: the user's module is imported (its top level
        # runs) and its function found; the function runs when the search starts.
        try:
            resolve_entrypoint(recipe.task.entrypoint)
        except TaskError as e:
            raise source.error(("task", "entrypoint"), str(e)) from e
    return recipe


def _thread_problems(recipe: Recipe) -> list[tuple[tuple[Any, ...], str]]:
    """Thread counts above the CPUs this process may use.

    Refused rather than warned about: a measurement never runs more threads than those CPUs,
    so such a variant would be labelled with one thread count and measured with another.
    """
    from compresslab.machine import logical_cpus
    from compresslab.recipe import ParamChoices, ParamRange

    cpus = logical_cpus()
    found: list[tuple[tuple[Any, ...], Any]] = []
    if recipe.energy.threads is not None:
        found.append((("energy", "threads"), [recipe.energy.threads]))
    spec = recipe.runtime.threads
    if spec is not None:
        values = (
            [spec.low, spec.high]
            if isinstance(spec, ParamRange)
            else list(spec.choices)
            if isinstance(spec, ParamChoices)
            else [spec]
        )
        found.append((("runtime", "threads"), values))
    problems = []
    for loc, values in found:
        over = [v for v in values if isinstance(v, int) and not isinstance(v, bool) and v > cpus]
        if over:
            problems.append(
                (
                    loc,
                    f"{max(over)} threads is more than the {cpus} CPUs this process may use: a "
                    f"measurement runs at most {cpus} threads, so the result would be labelled "
                    f"with a thread count it was not measured with; valid on this machine: "
                    f"integer in [1, {cpus}]",
                )
            )
    return problems


def _grid_problems(recipe: Recipe) -> list[tuple[tuple[Any, ...], str]]:
    """An exhaustive grid that cannot be listed (no step, or too many variants)."""
    if recipe.search.sampler != "grid":
        return []  # the other samplers never list the space (auto counts it first)
    from compresslab.study.space import MAX_GRID, grid_too_big, recipe_grid_size

    loc = ("search", "sampler")
    try:
        size = recipe_grid_size(recipe.compression, recipe.runtime)
    except RecipeError as e:
        return [(loc, str(e).removeprefix("field 'search.sampler': "))]
    return [(loc, grid_too_big(size))] if size > MAX_GRID else []


class _NoAliasDumper(yaml.SafeDumper):
    """Writes an object shared by two places twice: a recipe has no aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _dict_text(source: Mapping[str, Any]) -> str:
    try:
        return yaml.dump(dict(source), Dumper=_NoAliasDumper)
    except RecursionError:
        raise RecipeError(
            "the recipe dict refers to itself: give each section its own value",
            path="<dict>",
        ) from None
    except yaml.YAMLError as e:
        raise RecipeError(
            f"the recipe dict holds a value YAML cannot write ({e}): use plain text, numbers, "
            "true/false, None, lists and dicts",
            path="<dict>",
        ) from e
