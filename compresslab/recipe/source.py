"""Reading a recipe's YAML: safe loader, size and shape limits, and the line of every key.

Validating what was read against the schema is :mod:`.validate`'s job.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from compresslab.errors import RecipeError


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


#: The largest recipe read, in bytes. A recipe is a page of settings; a bigger file is a
#: mistake (or an attack) and is refused before it is read, let alone parsed.
MAX_RECIPE_BYTES = 1_000_000
#: How deep a recipe's YAML may nest. The recipe itself needs six levels
#: (``compression.0.params.ratio.choices.0``); deeper documents only exhaust the parser.
MAX_DEPTH = 32
#: The most characters a number may have (the longest recipe value, a seed, has 10 digits).
MAX_NUMBER_CHARS = 100
#: The most values (scalars, lists and mappings) a recipe may hold. The shipped ones hold
#: about 60; long lists belong in files that ``task.options`` point at.
MAX_VALUES = 10_000

# The C parser when PyYAML has libyaml (same results, many times faster on big files).
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# Tags the YAML core schema uses implicitly; any other tag (!!python/..., !!binary, !local)
# asks for a constructor a recipe has no use for.
_PLAIN_TAGS = {
    f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq")
}
_NUMBER = re.compile(r"[-+]?(\.?[0-9][0-9_]*)(\.[0-9_]*)?([eE][-+]?[0-9]+)?")


def _too_big(size: int, path: str) -> RecipeError:
    return RecipeError(
        f"the recipe is {size:,} bytes, above the limit of 1 MB ({MAX_RECIPE_BYTES:,} bytes): "
        "a recipe is a page of settings; keep data in files that `task.options` point at",
        path=path,
    )


def read_source(path: str | Path) -> RecipeSource:
    """Read a recipe file into a :class:`RecipeSource` (safe YAML, mapping at top level).

    The file is refused before it is read when it is larger than :data:`MAX_RECIPE_BYTES`.
    """
    p = Path(path)
    if not p.is_file():
        raise RecipeError(
            f"no recipe file at {p}: check the path (recipes live in `recipes/`, e.g. "
            "`recipes/digits.yaml`)",
            path=str(p),
        )
    try:
        size = p.stat().st_size
        if size > MAX_RECIPE_BYTES:
            raise _too_big(size, str(p))
        with p.open("rb") as fh:  # a file that grows meanwhile is read no further
            raw = fh.read(MAX_RECIPE_BYTES + 1)
        if len(raw) > MAX_RECIPE_BYTES:
            raise _too_big(len(raw), str(p))
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RecipeError(
            f"cannot read the recipe ({e}): save it as UTF-8 text", path=str(p)
        ) from e
    return source_from_text(text, path=str(p))


def source_from_text(text: str, *, path: str = "<recipe>") -> RecipeSource:
    """Parse YAML text (safe loader only) and record the line of every key.

    Before anything is built from it, the document is read as a stream of events and refused
    when it uses an alias (``*name``: the way to make a small file expand to gigabytes, or
    refer to itself), an explicit tag, a duplicate key, more than :data:`MAX_DEPTH` levels of
    nesting, more than :data:`MAX_VALUES` values or a number longer than
    :data:`MAX_NUMBER_CHARS` characters.
    """
    if len(text) > MAX_RECIPE_BYTES or len(text.encode("utf-8")) > MAX_RECIPE_BYTES:
        raise _too_big(len(text.encode("utf-8")), path)
    try:
        _check_events(text, path)
        loader = _LOADER(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        raise _invalid_yaml(e, text, path) from e
    except (ValueError, RecursionError) as e:  # a scalar no constructor could convert
        raise RecipeError(
            f"cannot read a value ({type(e).__name__}: {str(e)[:200]}): write plain text, "
            "numbers, true/false or null",
            path=path,
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


def _invalid_yaml(e: yaml.YAMLError, text: str, path: str) -> RecipeError:
    mark = getattr(e, "problem_mark", None)
    line = mark.line + 1 if mark is not None else None
    position = getattr(e, "position", None)
    if line is None and isinstance(position, int):  # a reader error: an unacceptable character
        line = text.count("\n", 0, position) + 1
    context = getattr(e, "context", None)
    problem = getattr(e, "problem", None) or str(e)
    what = f"{context}: {problem}" if context else problem
    fix = "fix the syntax (indentation, a missing ':' or quote)"
    if isinstance(e, yaml.reader.ReaderError):
        char = e.character  # an int (the C reader) or a one-character str (Python's)
        code = char if isinstance(char, int) else ord(str(char)[:1] or " ")
        what = f"the character #x{code:02x} is not allowed"
        fix = "remove it; a recipe is printable UTF-8 text"
    elif isinstance(e, yaml.constructor.ConstructorError):
        fix = "write keys as plain text and values as text, numbers, lists or mappings"
    if "maximum nesting depth" in what:  # libyaml's own limit, met before our event check
        return RecipeError(_too_deep(), path=path, line=line)
    what = " ".join(what.split())  # one line
    return RecipeError(f"invalid YAML ({what}): {fix}", path=path, line=line)


def _too_deep() -> str:
    return (
        f"the YAML is nested more than {MAX_DEPTH} levels deep: a recipe needs a few levels; "
        "flatten it"
    )


def _tag_name(tag: str) -> str:
    return "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:yaml.org") else tag


class _Collection:
    """An open mapping or sequence while the events are read: its keys, and what comes next."""

    __slots__ = ("is_mapping", "keys", "expect_key")

    def __init__(self, is_mapping: bool) -> None:
        self.is_mapping = is_mapping
        self.keys: dict[str, int | None] = {}
        self.expect_key = True


def _check_events(text: str, path: str) -> None:
    """Refuse aliases, tags, duplicate keys, deep nesting and huge numbers (see above)."""
    open_: list[_Collection] = []
    values = 0
    for event in yaml.parse(text, Loader=_LOADER):
        line = event.start_mark.line + 1 if event.start_mark is not None else None
        if isinstance(event, yaml.NodeEvent):
            values += 1
            if values > MAX_VALUES:
                raise RecipeError(
                    f"the recipe holds more than {MAX_VALUES} values: a recipe is a page of "
                    "settings; keep data in files that `task.options` point at",
                    path=path,
                    line=line,
                )
        if isinstance(event, yaml.AliasEvent):
            raise RecipeError(
                f"YAML aliases (*{event.anchor}) are not allowed in a recipe: write the value "
                "out where it is used (a recipe needs no anchors, aliases or merge keys `<<`)",
                path=path,
                line=line,
            )
        if isinstance(event, yaml.CollectionEndEvent):
            open_.pop()
            continue
        if not isinstance(event, yaml.ScalarEvent | yaml.CollectionStartEvent):
            continue
        tag = event.tag
        if tag not in (None, "!") and tag not in _PLAIN_TAGS:
            raise RecipeError(
                f"the YAML tag '{_tag_name(tag)}' is not allowed: a recipe is plain data "
                "(mappings, lists, text, numbers, true/false, null); remove the tag",
                path=path,
                line=line,
            )
        parent = open_[-1] if open_ else None
        if parent is not None and parent.is_mapping:
            if parent.expect_key and isinstance(event, yaml.ScalarEvent):
                if event.value in parent.keys:
                    first = parent.keys[event.value]
                    raise RecipeError(
                        f"key '{event.value}' appears twice in this mapping (first on line "
                        f"{first}): merge the two into one",
                        path=path,
                        line=line,
                    )
                parent.keys[event.value] = line
            parent.expect_key = not parent.expect_key
        if isinstance(event, yaml.ScalarEvent):
            value = event.value
            if (
                len(value) > MAX_NUMBER_CHARS
                and event.implicit[0]
                and _NUMBER.fullmatch(value) is not None
            ):
                digits = sum(c.isdigit() for c in value)
                raise RecipeError(
                    f"a number with {digits} digits: no recipe value needs more than 20; "
                    "check the value (or quote it if it is text)",
                    path=path,
                    line=line,
                )
            continue
        open_.append(_Collection(isinstance(event, yaml.MappingStartEvent)))
        if len(open_) > MAX_DEPTH:
            raise RecipeError(_too_deep(), path=path, line=line)
