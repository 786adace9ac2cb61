"""Helpers shared by the task providers: options, data files, stable seeded ordering."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch

from compresslab.errors import TaskError

T = TypeVar("T")


def resolve_options(
    task: str, options: Mapping[str, Any], defaults: Mapping[str, Any]
) -> dict[str, Any]:
    """``defaults`` updated with ``options``; an option that is not in ``defaults`` is an error.

    Args:
        task: the task's name, for the message.
        options: what the recipe's ``task.options`` holds.
        defaults: every valid option with its default value.

    Raises:
        TaskError: an option is unknown (the message lists the valid ones).
    """
    unknown = set(options) - set(defaults)
    if unknown:
        raise TaskError(
            f"unknown option(s) for task '{task}': {', '.join(sorted(unknown))}; "
            f"valid options are {', '.join(defaults)}"
        )
    return {**defaults, **options}


def require_path(path: str | Path, *, what: str, package: str | None, option: str) -> Path:
    """``path`` as a :class:`Path` if it exists, else a :class:`TaskError` that says how to fix it.

    Args:
        path: the file or folder a provider needs.
        what: what it holds, for the message (e.g. ``"the WordNet noun database"``).
        package: the Debian package that installs it at its default place, if any.
        option: the task option that points elsewhere.
    """
    p = Path(path).expanduser()
    if p.exists():
        return p
    how = f"install it with `apt-get install {package}`, or " if package else ""
    raise TaskError(f"{what} is not at {p}: {how}set the task option `{option}` to its location")


def stable_order(
    items: Iterable[T], *, seed: int, salt: str = "", key: Callable[[T], object] = str
) -> list[T]:
    """``items`` in a seeded pseudo-random order that never changes across versions or machines.

    Each item is ranked by the SHA-256 of ``seed``, ``salt`` and ``str(key(item))``, so the
    order depends on nothing else (unlike a library RNG, whose stream may change between
    releases). Keys should be distinct.
    """
    return sorted(
        items, key=lambda item: hashlib.sha256(f"{seed}:{salt}:{key(item)}".encode()).digest()
    )


def positive_int(task: str, name: str, value: Any) -> int:
    """``value`` as an ``int`` >= 1, else a :class:`TaskError` naming the option."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TaskError(f"task '{task}': option `{name}` must be a positive integer, got {value!r}")
    return value


def stratified_subset(labels: torch.Tensor, size: int, *, seed: int, salt: str) -> torch.Tensor:
    """Indices of a seeded, stable subset of ``size`` examples with classes in proportion.

    Each class contributes ``size * its share`` examples (largest remainders round), ranked by
    :func:`stable_order`; the result is in a seeded mixed order.
    """
    n = labels.shape[0]
    if size >= n:
        return torch.tensor(stable_order(range(n), seed=seed, salt=salt), dtype=torch.long)
    classes, counts = torch.unique(labels, return_counts=True)
    quotas = counts.double() * size / n
    take = quotas.floor().long()
    for i in torch.argsort(quotas - take.double(), descending=True)[: size - int(take.sum())]:
        take[i] += 1
    chosen: list[int] = []
    for c, k in zip(classes.tolist(), take.tolist(), strict=True):
        members = torch.nonzero(labels == c).flatten().tolist()
        chosen += stable_order(members, seed=seed, salt=f"{salt}:{c}")[:k]
    return torch.tensor(stable_order(chosen, seed=seed, salt=salt), dtype=torch.long)
