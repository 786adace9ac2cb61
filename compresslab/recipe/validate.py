"""Validating a recipe against the schema, every problem in one sentence with its line and fix."""

from __future__ import annotations

import difflib
import math
import re
import types
from collections.abc import Mapping
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from compresslab.errors import RecipeError
from compresslab.recipe.schema import UNION_TAGS, Recipe
from compresslab.recipe.source import RecipeSource

# What a text field must look like, for its pattern's error message.
_PATTERN_HINTS = {
    "name": "use letters, digits, '.', '_' and '-' only (it names the report folder)",
    "task.entrypoint": "write it as `package.module:function`",
    "energy.device": "use cpu, cuda or cuda:N",
    "report.currency": "use a currency code or symbol: up to 8 letters or symbols (USD, EUR, €)",
    "search.study_name": "use one line of text, without control characters",
}


def _fix_hint(err: Mapping[str, Any]) -> str:
    kind = err.get("type", "")
    hint = _PATTERN_HINTS.get(".".join(str(p) for p in err.get("loc", ())))
    if kind == "string_pattern_mismatch" and hint:
        return hint
    if kind == "missing":
        return "add it (see README.md, 'Recipe format')"
    if kind == "literal_error":
        return "use one of the values listed"
    return "see README.md, 'Recipe format'"


def _strip(ann: Any) -> Any:
    """``Annotated[X, ...]`` and ``X | None`` -> ``X`` (other unions are left as they are)."""
    while True:
        origin = get_origin(ann)
        if origin is Annotated:
            ann = get_args(ann)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(ann) if a is not type(None)]
            if len(members) != 1:
                return ann
            ann = members[0]
        else:
            return ann


def _model_field(loc: tuple[Any, ...]) -> tuple[type[BaseModel] | None, FieldInfo | None]:
    """The schema model that ``loc`` ends in and, when ``loc`` names one of its fields, its info.

    ``("energy", "window")`` gives ``(EnergySpec, None)``; ``("search", "seed")`` gives
    ``(SearchSpec, <seed's FieldInfo>)``; a location the schema cannot follow gives Nones.
    """
    ann: Any = Recipe
    info: FieldInfo | None = None
    for i, part in enumerate(loc):
        ann = _strip(ann)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            if part not in ann.model_fields:
                return (ann, None) if i == len(loc) - 1 else (None, None)
            info = ann.model_fields[part]
            if i == len(loc) - 1:
                return ann, info
            ann = info.annotation
        elif get_origin(ann) in (list, dict) and get_args(ann):
            ann = get_args(ann)[-1]
        else:
            return None, None
    ann = _strip(ann)
    return (ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None), None


def _valid_range(info: FieldInfo | None) -> str:
    """E.g. ``; valid: integer in [0, 4294967295]`` from a field's bounds ('' without any)."""
    if info is None:
        return ""
    lo = hi = None
    lo_open = hi_open = False
    for m in info.metadata:
        if getattr(m, "ge", None) is not None:
            lo = m.ge
        if getattr(m, "gt", None) is not None:
            lo, lo_open = m.gt, True
        if getattr(m, "le", None) is not None:
            hi = m.le
        if getattr(m, "lt", None) is not None:
            hi, hi_open = m.lt, True
    if lo is None and hi is None:
        return ""
    kind = "integer" if _strip(info.annotation) is int else "number"
    low = "-inf" if lo is None else f"{lo:g}" if isinstance(lo, float) else str(lo)
    high = "inf" if hi is None else f"{hi:g}" if isinstance(hi, float) else str(hi)
    return f"; valid: {kind} in {'(' if lo_open else '['}{low}, {high}{')' if hi_open else ']'}"


_BOUND_WORDS = {
    "greater_than_equal": "is below the minimum",
    "greater_than": "must be above",
    "less_than_equal": "is above the maximum",
    "less_than": "must be below",
}


def _message(err: Mapping[str, Any], loc: tuple[Any, ...], source: RecipeSource) -> str:
    """One problem in words, with how to fix it."""
    kind = err.get("type", "")
    value = err.get("input")
    if kind == "extra_forbidden":
        model, _ = _model_field(loc)
        valid = [k for k in (model.model_fields if model else {}) if k not in _present(source, loc)]
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.7)
        if close:
            return f"unknown key '{loc[-1]}': did you mean '{close[0]}'?"
        listed = f" (valid keys here: {', '.join(valid)})" if valid else ""
        return f"unknown key '{loc[-1]}': remove it or check its spelling{listed}"
    _, info = _model_field(loc)
    if isinstance(value, float) and not math.isfinite(value) and kind != "missing":
        return f"{value} is not a finite number{_valid_range(info)}"
    if kind in _BOUND_WORDS:
        bound = next(iter((err.get("ctx") or {}).values()), "?")
        shown = f"{bound:g}" if isinstance(bound, float) else bound
        return f"{value!r} {_BOUND_WORDS[kind]} {shown}{_valid_range(info)}"
    msg = re.sub(r"^Value error, ", "", str(err["msg"]))
    if kind == "value_error":
        return msg  # the schema's own checks say how to fix what they find
    if kind == "string_pattern_mismatch":
        msg = f"{value!r} is not of the expected form"
    return f"{msg}: {_fix_hint(err)}"


def _present(source: RecipeSource, loc: tuple[Any, ...]) -> set[str]:
    """The keys the recipe gives beside ``loc``'s last part."""
    node: Any = source.data
    for part in loc[:-1]:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return set()
    return {str(k) for k in node} if isinstance(node, Mapping) else set()


def parse_recipe(source: RecipeSource) -> Recipe:
    """Validate a :class:`RecipeSource` against the schema.

    Raises:
        RecipeError: every problem, one per line in file order, each with its line (a
            misspelt key names the key it resembles, and hides that key's "field required").
    """
    try:
        return Recipe.model_validate(source.data)
    except ValidationError as e:
        errors = e.errors(include_url=False)
    found: list[tuple[tuple[Any, ...], str, dict[str, Any]]] = []
    for err in errors:
        # pydantic puts union members in loc (e.g. 'ParamRange', 'range'); drop them.
        loc = tuple(
            p
            for p in err["loc"]
            if not (isinstance(p, str) and (re.match(r"^[A-Z]\w*$", p) or p in UNION_TAGS))
        )
        found.append((loc, _message(err, loc, source), dict(err)))
    # A misspelt key and the required key it resembles are one problem: keep the first.
    meant = {
        loc[:-1] + (m.group(1),)
        for loc, text, err in found
        if err.get("type") == "extra_forbidden"
        and (m := re.search(r"did you mean '([^']+)'", text)) is not None
    }
    problems: list[RecipeError] = []
    seen: set[tuple[tuple[Any, ...], str]] = set()
    for loc, text, details in found:
        if details.get("type") == "missing" and loc in meant or (loc, text) in seen:
            continue
        seen.add((loc, text))
        problems.append(source.error(loc, text))
    problems.sort(key=lambda p: p.line or 0)
    raise RecipeError.combine(problems)
