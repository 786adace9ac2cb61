"""How a variant runs (:class:`Runtime`), its build context, and screening's exception."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from compresslab.availability import Availability
from compresslab.compress import (
    CompressContext,
)
from compresslab.recipe import Recipe
from compresslab.records import (
    Screening,
)

if TYPE_CHECKING:
    from compresslab.tasks import Task

#: Runtime knobs a recipe can search (``runtime.<name>``).
RUNTIME_KNOBS = ("threads", "batch_size", "power_limit_w", "kv_cache")


@dataclass(frozen=True)
class Runtime:
    """How a variant is run while it is measured (``None``: the recipe's ``energy`` value)."""

    threads: int | None = None
    batch_size: int | None = None
    power_limit_w: float | None = None
    #: Generative tasks: keep the KV cache while generating (``None``: the task's default, on).
    kv_cache: bool | None = None

    def label(self) -> str:
        """E.g. `` @ threads=1, batch_size=32`` (empty when nothing is set)."""
        parts = [f"{k}={v}" for k, v in dataclasses.asdict(self).items() if v is not None]
        return f" @ {', '.join(parts)}" if parts else ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (stored with a trial; :meth:`from_dict` reads it back)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Runtime:
        """The runtime stored by :meth:`to_dict` (missing keys: the recipe's value)."""
        return cls(**{k: v for k, v in (data or {}).items() if k in RUNTIME_KNOBS})


def knob_availability(name: str) -> Availability:
    """Whether runtime knob ``name`` can be set on this machine, and why (not)."""
    if name == "power_limit_w":
        from compresslab.energy import power_limit_availability

        gpu = power_limit_availability()
        if not gpu:
            return Availability(False, f"needs an NVIDIA GPU: {gpu.reason}")
        return gpu
    if name == "kv_cache":
        return Availability(True, "set in the generation workload of generative tasks")
    return Availability(True, "set through torch")


class Screened(Exception):
    """A variant clearly outside the tolerance (accuracy, or perplexity): not measured for energy.

    ``accuracy`` is what screening saw (None when the perplexity ruled the variant out first).
    """

    def __init__(self, reason: str, *, accuracy: float | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.accuracy = accuracy

    @property
    def screening(self) -> Screening:
        """The record a trial keeps of it."""
        return Screening(self.reason, self.accuracy)


def compress_context(recipe: Recipe, task: Task) -> CompressContext:
    """The context every variant of ``recipe`` is built with (the same everywhere)."""
    return CompressContext(
        example_inputs=task.example_inputs(),
        keep_modules=(*task.keep_layers, *recipe.task.keep_layers),
        seed=recipe.search.seed,
        train_inputs=task.train_inputs,
        train_labels=task.train_labels,
        device=recipe.energy.device,
    )
