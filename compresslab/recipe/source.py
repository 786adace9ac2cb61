"""Reading a recipe's YAML (safe loader, line numbers) and turning errors into one sentence."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from compresslab.errors import RecipeError
from compresslab.recipe.schema import _UNION_TAGS, Recipe


def _line_map(node: yaml.Node, path: tuple[Any, ...], out: dict[tuple[Any, ...], int]) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            out[path + (key,)] = key_node.start_mark.line + 1
            _line_map(value_node, path + (key,), out)
            out[path + (key,)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_map(item, path + (i,), out)


class RecipeSource:
    """The parsed YAML of a recipe with the line of every field, for error messages."""

    def __init__(self, data: Mapping[str, Any], *, path: str, lines: dict[tuple[Any, ...], int]):
        self.data = data
        self.path = path
        self._lines = lines

    def line_of(self, loc: tuple[Any, ...]) -> int | None:
        """The line of the deepest existing prefix of ``loc`` (None when unknown)."""
        for end in range(len(loc), -1, -1):
            if loc[:end] in self._lines:
                return self._lines[loc[:end]]
        return None

    def error(self, loc: tuple[Any, ...], message: str) -> RecipeError:
        """A :class:`RecipeError` pointing at ``loc`` in this file."""
        field = ".".join(str(p) for p in loc) or None
        return RecipeError(message, path=self.path, field=field, line=self.line_of(loc))


def read_source(path: str | Path) -> RecipeSource:
    """Read a recipe file into a :class:`RecipeSource` (safe YAML, mapping at top level)."""
    p = Path(path)
    if not p.is_file():
        raise RecipeError(
            f"no recipe file at {p}: check the path (recipes live in `recipes/`, e.g. "
            "`recipes/digits.yaml`)",
            path=str(p),
        )
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RecipeError(
            f"cannot read the recipe ({e}): save it as UTF-8 text", path=str(p)
        ) from e
    return source_from_text(text, path=str(p))


def source_from_text(text: str, *, path: str = "<recipe>") -> RecipeSource:
    """Parse YAML text (safe loader only) and record the line of every key."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(e, "problem", None) or str(e)
        raise RecipeError(
            f"invalid YAML ({problem}): fix the syntax (indentation, a missing ':' or quote)",
            path=path,
            line=line,
        ) from e
    if data is None:
        raise RecipeError(
            "the recipe is empty: start from `recipes/digits.yaml`", path=path, line=1
        )
    if not isinstance(data, dict):
        raise RecipeError(
            f"the recipe must be a mapping of keys (name, task, compression, ...), "
            f"not a {type(data).__name__}",
            path=path,
            line=1,
        )
    lines: dict[tuple[Any, ...], int] = {}
    if node is not None:
        _line_map(node, (), lines)
    return RecipeSource(data, path=path, lines=lines)


# What a text field must look like, for its pattern's error message.
_PATTERN_HINTS = {
    "name": "use letters, digits, '.', '_' and '-' only (it names the report folder)",
    "task.entrypoint": "write it as `package.module:function`",
    "energy.device": "use cpu, cuda or cuda:N",
}


def _fix_hint(err: Mapping[str, Any]) -> str:
    kind = err.get("type", "")
    hint = _PATTERN_HINTS.get(".".join(str(p) for p in err.get("loc", ())))
    if kind == "string_pattern_mismatch" and hint:
        return hint
    if kind == "extra_forbidden":
        return "remove it or check its spelling (see README.md, 'Recipe format')"
    if kind == "missing":
        return "add it (see README.md, 'Recipe format')"
    if kind == "literal_error":
        return "use one of the values listed"
    return "see README.md, 'Recipe format'"


def parse_recipe(source: RecipeSource) -> Recipe:
    """Validate a :class:`RecipeSource` against the schema; the first error is raised."""
    try:
        return Recipe.model_validate(source.data)
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        loc = tuple(err["loc"])
        # pydantic puts union members in loc (e.g. 'ParamRange', 'range'); drop them for the user.
        loc = tuple(
            p
            for p in loc
            if not (isinstance(p, str) and (re.match(r"^[A-Z]\w*$", p) or p in _UNION_TAGS))
        )
        msg = err["msg"]
        if err.get("type") == "extra_forbidden":
            msg = f"unknown key '{loc[-1]}'"
        if err.get("type") == "string_pattern_mismatch":
            msg = f"{err.get('input')!r} is not of the expected form"
        msg = re.sub(r"^Value error, ", "", msg)
        more = (
            f" ({len(e.errors()) - 1} more problem(s) after this one)"
            if len(e.errors()) > 1
            else ""
        )
        raise source.error(loc, f"{msg}: {_fix_hint(err)}{more}") from None
