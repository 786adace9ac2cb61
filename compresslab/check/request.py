"""What the gate is asked to do, as one object each: run it, or write its baseline.

:class:`GateRequest` is one run of the energy gate (``compresslab check``,
:func:`compresslab.api.energy_gate`); :class:`BaselineRequest` writes the baseline file and its
program (``compresslab baseline``, :func:`compresslab.api.update_baseline`). Each is built once,
where the options enter (the command line, a notebook), checked there, and passed down whole:
the API loads the recipe into it, the gate reads it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compresslab.check.baseline import GateInputError
from compresslab.recipe import Recipe

#: A recipe as the API takes it: loaded, a path to its YAML, or the YAML's mapping.
RecipeLike = Recipe | str | Path | Mapping[str, Any]


def _as_path(value: str | Path | None) -> Path | None:
    return None if value is None else Path(value)


def _loaded(recipe: RecipeLike) -> Recipe:
    if not isinstance(recipe, Recipe):
        raise TypeError(
            f"the request holds an unloaded recipe ({recipe!r}): pass it through "
            "compresslab.api (energy_gate, update_baseline), which loads and checks it"
        )
    return recipe


@dataclass(frozen=True, kw_only=True)
class GateRequest:
    """One run of the gate: the candidate, exactly one reference, and how many pairs.

    The thresholds are the recipe's ``check`` section; ``pairs`` alone may override one.

    Attributes:
        recipe: the recipe (a :class:`~compresslab.recipe.Recipe`, a path to its YAML, or its
            mapping); the API loads it before the gate runs.
        baseline: a baseline JSON (:class:`BaselineRequest` writes one); the reference is the
            program beside it.
        reference_dir: a ``compresslab export`` folder to compare with instead (both sides
            run eagerly).
        reference_rev: a git revision whose code builds the reference instead.
        trial: gate this trial's variant of the recipe's study (None: the recipe's model).
        storage: the study's storage URL (with ``trial``; default: the recipe's).
        base_dir: the folder the recipe's relative ``output`` is resolved against.
        pairs: interleaved pairs of windows (None: the recipe's ``check.pairs``).
        recipe_path: the recipe's file, so that ``reference_rev`` reads the task as it was at
            that revision; taken from ``recipe`` when that is a path.

    Raises:
        GateInputError: not exactly one reference, or fewer than two pairs (exit code 2).
    """

    recipe: RecipeLike
    baseline: Path | None = None
    reference_dir: Path | None = None
    reference_rev: str | None = None
    trial: int | None = None
    storage: str | None = None
    base_dir: Path | None = None
    pairs: int | None = None
    recipe_path: Path | None = None

    def __post_init__(self) -> None:
        for name in ("baseline", "reference_dir", "base_dir", "recipe_path"):
            object.__setattr__(self, name, _as_path(getattr(self, name)))
        if self.recipe_path is None and isinstance(self.recipe, str | Path):
            object.__setattr__(self, "recipe_path", Path(self.recipe))
        refs = (self.baseline, self.reference_dir, self.reference_rev)
        given = [x for x in refs if x is not None]
        if len(given) != 1:
            raise GateInputError(
                "give the gate one reference: a baseline file (--baseline FILE, baseline=), "
                "an exported variant (--reference DIR, reference_dir=) or a git revision "
                "(--reference-rev REV, reference_rev=)" + (f"; got {len(given)}" if given else "")
            )
        if self.pairs is not None and self.pairs < 2:
            raise GateInputError("--pairs (pairs=) must be at least 2: an interval needs two")

    @property
    def loaded_recipe(self) -> Recipe:
        """The recipe, loaded (raises TypeError when the API has not loaded it yet)."""
        return _loaded(self.recipe)

    @property
    def n_pairs(self) -> int:
        """The pairs of the first measurement: ``pairs``, else the recipe's ``check.pairs``."""
        return self.pairs or self.loaded_recipe.check.pairs

    def with_recipe(self, recipe: Recipe) -> GateRequest:
        """This request with its recipe loaded (a path given stays as ``recipe_path``)."""
        return dataclasses.replace(self, recipe=recipe)


@dataclass(frozen=True, kw_only=True)
class BaselineRequest:
    """Write a baseline: the model's figures as JSON and its program beside it.

    Attributes:
        recipe: the recipe (as for :class:`GateRequest`).
        baseline: the baseline JSON to write; the program goes beside it (``<stem>.pt2``, or
            ``<stem>.ts`` when only TorchScript captures the model).
        trial: record this trial's variant of the recipe's study (None: the recipe's model).
        storage: the study's storage URL (with ``trial``).
        base_dir: the folder the recipe's relative ``output`` is resolved against.
        replace: replace an existing baseline file (and its program); otherwise one that
            exists is refused.
    """

    recipe: RecipeLike
    baseline: Path
    trial: int | None = None
    storage: str | None = None
    base_dir: Path | None = None
    replace: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "baseline", Path(self.baseline))
        object.__setattr__(self, "base_dir", _as_path(self.base_dir))

    @property
    def loaded_recipe(self) -> Recipe:
        """The recipe, loaded (raises TypeError when the API has not loaded it yet)."""
        return _loaded(self.recipe)

    def with_recipe(self, recipe: Recipe) -> BaselineRequest:
        """This request with its recipe loaded."""
        return dataclasses.replace(self, recipe=recipe)
