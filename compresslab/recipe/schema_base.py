"""What every model of the recipe's schema shares: unknown keys refused, values frozen."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler


class StrictModel(BaseModel):
    """A section of the recipe: an unknown key is an error, and the values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def without_unset(
    handler: SerializerFunctionWrapHandler, value: Any, names: tuple[str, ...]
) -> Any:
    """``value`` dumped by ``handler``, without the fields ``names`` where they are unset.

    For fields added after recipes were first hashed: a recipe that does not use one dumps,
    and so hashes, as it did before the field existed.
    """
    out = handler(value)
    if isinstance(out, dict):
        for name in names:
            if out.get(name) is None:
                out.pop(name, None)
    return out
