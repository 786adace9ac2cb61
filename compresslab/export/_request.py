"""What ``compresslab export`` asks for, as one object passed down whole."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compresslab.recipe import Recipe


@dataclass(frozen=True, kw_only=True)
class ExportRequest:
    """Export one trial's variant of a recipe's study (``compresslab export``).

    Attributes:
        recipe: the recipe (a :class:`~compresslab.recipe.Recipe`, a path to its YAML, or its
            mapping); :func:`compresslab.api.export_trial` loads it.
        trial: the trial whose variant to export.
        out_dir: the folder to write (created as a whole).
        storage: the study's storage URL (default: the recipe's).
        base_dir: the folder the recipe's relative ``output`` is resolved against.
        replace: replace an existing, non-empty ``out_dir`` (``--force``).
        allow_unmeasured: export a trial that was not measured (screened out, predicted
            dominated, failed) too (``--allow-unmeasured``).
    """

    recipe: Recipe | str | Path | Mapping[str, Any]
    trial: int
    out_dir: Path
    storage: str | None = None
    base_dir: Path | None = None
    replace: bool = False
    allow_unmeasured: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "out_dir", Path(self.out_dir))
        if self.base_dir is not None:
            object.__setattr__(self, "base_dir", Path(self.base_dir))

    @property
    def loaded_recipe(self) -> Recipe:
        """The recipe, loaded (raises TypeError when the API has not loaded it yet)."""
        if not isinstance(self.recipe, Recipe):
            raise TypeError(
                f"the request holds an unloaded recipe ({self.recipe!r}): pass it through "
                "compresslab.api.export_trial, which loads and checks it"
            )
        return self.recipe

    def with_recipe(self, recipe: Recipe) -> ExportRequest:
        """This request with its recipe loaded."""
        return dataclasses.replace(self, recipe=recipe)
