"""JSON-able form of the typed records, and back: the one codec every store uses.

:func:`to_json` turns a record (a frozen dataclass, nested) into plain JSON values;
:func:`from_json` reads them back into the declared type, field by field, from the dataclass's
own annotations. Reading is tolerant the way stored data needs: a key the type does not know
(written by another version) is ignored, a missing key takes the field's default, so a record
written before a field existed still reads. A missing key without a default is an error that
names the record and the field.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")

#: What :func:`to_json` returns: JSON values (``float('nan')`` stays a float).
JSON = Any


class RecordFormatError(ValueError):
    """Stored data that does not fit the record type it is read as."""


def to_json(value: Any) -> JSON:
    """``value`` as JSON values: dataclasses become dicts, enums their values, tuples lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_json(tp: type[T], data: JSON) -> T:
    """``data`` (from :func:`to_json`, or an older version of it) read as type ``tp``.

    Raises:
        RecordFormatError: ``data`` does not fit ``tp`` (the message names the field).
    """
    return typing.cast(T, _read(tp, data, tp.__name__ if isinstance(tp, type) else str(tp)))


def _read(tp: Any, data: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return data
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if data is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _read(option, data, where)
            except (RecordFormatError, TypeError, ValueError) as e:
                errors.append(str(e))
        raise RecordFormatError(f"{where}: {data!r} fits none of {tp} ({'; '.join(errors)})")
    if data is None:
        raise RecordFormatError(f"{where}: a value is required, found none")
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _read_dataclass(tp, data, where)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp(data)
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_read(args[0], v, f"{where}[{i}]") for i, v in enumerate(data))
        if len(args) != len(data):
            raise RecordFormatError(f"{where}: expected {len(args)} values, found {len(data)}")
        pairs = enumerate(zip(args, data, strict=True))
        return tuple(_read(a, v, f"{where}[{i}]") for i, (a, v) in pairs)
    if origin is list:
        (arg,) = typing.get_args(tp)
        return [_read(arg, v, f"{where}[{i}]") for i, v in enumerate(data)]
    if origin in (dict, Mapping) or origin is getattr(typing, "Mapping", None):
        key_tp, value_tp = typing.get_args(tp)
        if not isinstance(data, Mapping):
            raise RecordFormatError(f"{where}: expected a mapping, found {type(data).__name__}")
        return {
            _read(key_tp, k, where): _read(value_tp, v, f"{where}.{k}") for k, v in data.items()
        }
    if tp is float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            raise RecordFormatError(f"{where}: expected a number, found {data!r}")
        return float(data)
    if tp is int:
        if isinstance(data, float) and data.is_integer():
            return int(data)
        if isinstance(data, bool) or not isinstance(data, int):
            raise RecordFormatError(f"{where}: expected an integer, found {data!r}")
        return data
    if tp is bool:
        if not isinstance(data, bool):
            raise RecordFormatError(f"{where}: expected true or false, found {data!r}")
        return data
    if tp is str:
        if not isinstance(data, str):
            raise RecordFormatError(f"{where}: expected text, found {data!r}")
        return data
    return data


def _read_dataclass(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, Mapping):
        raise RecordFormatError(f"{where}: expected a mapping, found {type(data).__name__}")
    hints = _hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.name in data:
            values[f.name] = _read(hints[f.name], data[f.name], f"{where}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise RecordFormatError(f"{where}: the stored record has no '{f.name}'")
    return cls(**values)


def finite_or_none(value: float | None) -> float | None:
    """``value``, or None when it is None or not finite (for tables and JSON outputs)."""
    return None if value is None or not math.isfinite(value) else value
