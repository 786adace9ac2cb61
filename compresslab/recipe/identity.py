"""What identifies a recipe's results: its hash, the fields that decide them, what changed."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from compresslab.recipe.schema import (
    EnergySpec,
    MethodSpec,
    Recipe,
    RuntimeSpec,
    SearchSpec,
    TaskSpec,
)


def recipe_hash(recipe: Recipe) -> str:
    """A short hash of the recipe's content (stored with the study, the report and baselines)."""
    text = json.dumps(recipe.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


#: The recipe fields that decide measured results (dotted paths). A study continued under
#: other values would mix trials measured two ways on one frontier, so a search refuses to add
#: trials to it. Every other field (``name``, ``description``, ``search.trials``,
#: ``search.storage``, ``search.study_name``, ``output``, ``report``, ``carbon``, ``check``)
#: may change between runs.
RESULT_FIELDS: tuple[str, ...] = (
    "task",
    "compression",
    "runtime",
    "energy",
    "search.seed",
    "search.tolerance",
    "search.sampler",
    "search.screen_examples",
    "search.evaluation",
)

_UNSET = object()
# Each top-level section's model, to fill in the defaults of fields that a newer version
# added (a study stored by an older one lacks them, which is no change).
_SECTIONS: dict[str, Any] = {
    "task": TaskSpec,
    "runtime": RuntimeSpec,
    "energy": EnergySpec,
    "search": SearchSpec,
}


def result_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    """The :data:`RESULT_FIELDS` of a recipe's JSON dump (``recipe.model_dump(mode="json")``).

    Sections are passed through the current schema so that defaults are filled in; a section
    that no longer validates is kept as stored.
    """
    out: dict[str, Any] = {}
    for path in RESULT_FIELDS:
        head, _, rest = path.partition(".")
        section = data.get(head, _UNSET)
        if section is _UNSET:
            continue
        model = _SECTIONS.get(head)
        if model is not None and isinstance(section, Mapping):
            with contextlib.suppress(ValidationError):
                section = model.model_validate(dict(section)).model_dump(mode="json")
        elif head == "compression" and isinstance(section, list):
            with contextlib.suppress(ValidationError):
                section = [MethodSpec.model_validate(m).model_dump(mode="json") for m in section]
        if rest:
            if isinstance(section, Mapping) and rest in section:
                out.setdefault(head, {})[rest] = section[rest]
        else:
            out[head] = section
    return out


def _shown(value: Any) -> str:
    if value is _UNSET:
        return "(unset)"
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."


def _diff(old: Any, new: Any, path: str, out: list[str]) -> None:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in sorted(set(old) | set(new), key=str):
            _diff(old.get(key, _UNSET), new.get(key, _UNSET), f"{path}.{key}", out)
    elif isinstance(old, list) and isinstance(new, list):
        for i in range(max(len(old), len(new))):
            a = old[i] if i < len(old) else _UNSET
            b = new[i] if i < len(new) else _UNSET
            _diff(a, b, f"{path}.{i}", out)
    elif old is _UNSET and new is _UNSET:
        return
    # An int and a float are different values here: `low: 1` searches integers, `1.0` floats.
    elif type(old) is not type(new) or old != new:
        out.append(f"{path}: {_shown(old)} -> {_shown(new)}")


def recipe_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The result-deciding fields that differ between two recipe dumps, as dotted paths.

    Args:
        old: the JSON dump of one recipe (or its :func:`result_fields`).
        new: the JSON dump of another.

    Returns:
        One line per changed leaf, e.g. ``task.options.test_fraction: 0.2 -> 0.3``, in the
        order of :data:`RESULT_FIELDS`; empty when every field that decides results is the same.
    """
    a, b = result_fields(old), result_fields(new)
    out: list[str] = []
    for head in dict.fromkeys(p.partition(".")[0] for p in RESULT_FIELDS):
        _diff(a.get(head, _UNSET), b.get(head, _UNSET), head, out)
    return out
