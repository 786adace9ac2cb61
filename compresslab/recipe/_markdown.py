"""Markdown from the schema's own words: descriptions read from source, values in YAML.

Helpers of :mod:`compresslab.recipe.reference`: where a field's description is written (a
``#:`` comment above it, a docstring's ``Attributes:`` section), reST turned into markdown,
and a value written as a recipe would write it.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel


def yaml_flow(value: Any) -> str:
    """``value`` in YAML flow style, as a recipe would write it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"{value:g}" if isinstance(value, float) and abs(value) >= 1e4 else repr(value)
    if isinstance(value, str):
        return value if value and re.fullmatch(r"[\w.\-/]+", value) else f'"{value}"'
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {yaml_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(yaml_flow(v) for v in value) + "]"
    return str(value)


def field_comments(model: type[BaseModel]) -> dict[str, str]:
    """The ``#:`` comment block right above each field of ``model`` (and its bases)."""
    found: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or cls is BaseModel:
            continue
        try:
            source = inspect.getsource(cls)
        except (OSError, TypeError):
            continue
        lines = source.splitlines()
        body = [ln for ln in lines[1:] if ln.strip()]
        if not body:
            continue
        indent = len(body[0]) - len(body[0].lstrip())
        pending: list[str] = []
        for line in lines[1:]:
            stripped = line.strip()
            if not stripped:
                pending = []
            elif len(line) - len(line.lstrip()) == indent:  # a statement of the class body
                if stripped.startswith("#:"):
                    pending.append(stripped[2:].strip())
                    continue
                match = re.match(r"([A-Za-z_]\w*)\s*:", stripped)
                if match and pending:
                    found[match.group(1)] = " ".join(pending)
                pending = []
    return found


def attributes_section(model: type[BaseModel]) -> dict[str, str]:
    """``name: text`` entries of a Google-style ``Attributes:`` section of the docstring."""
    doc = inspect.cleandoc(model.__doc__ or "")
    match = re.search(r"^Attributes:\n((?:[ \t]+.*\n?|\n)+)", doc, flags=re.M)
    if not match:
        return {}
    entries: dict[str, str] = {}
    current: str | None = None
    for line in match.group(1).splitlines():
        head = re.match(r"^\s{2,8}(\w+)(?: \([^)]*\))?:\s*(.*)$", line)
        if head and len(line) - len(line.lstrip()) <= 8:
            current = head.group(1)
            entries[current] = head.group(2)
        elif current and line.strip():
            entries[current] += " " + line.strip()
    return entries


def docstring_text(model: type[BaseModel]) -> str:
    """The class docstring without its ``Attributes:`` section, as markdown prose."""
    doc = inspect.cleandoc(model.__doc__ or "")
    if model.__doc__ is None or doc == inspect.cleandoc(BaseModel.__doc__ or ""):
        return ""
    doc = re.split(r"^Attributes:\n", doc, flags=re.M)[0].strip()
    return prose(doc)


def first_paragraph(doc: str | None) -> str:
    return prose(inspect.cleandoc(doc or "").split("\n\n", 1)[0])


def prose(text: str) -> str:
    """Markdown from reST inline markup: ````x```` -> `` `x` ``, roles dropped; one line each."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"`\1`", text)
    text = text.replace("``", "`")
    paragraphs = [" ".join(p.split()) for p in text.split("\n\n")]
    return "\n\n".join(p for p in paragraphs if p)


def sentence(text: str) -> str:
    """``text`` as a sentence: capitalised, with a full stop."""
    text = prose(text)
    return (text[:1].upper() + text[1:]).rstrip(".") + "." if text else ""


def cell(text: str) -> str:
    """Text for one markdown table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def slug(title: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", title.strip().lower())
    return text.replace(" ", "-")
