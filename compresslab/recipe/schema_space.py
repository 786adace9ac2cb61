"""The search space: a parameter's three forms, the compression methods and the runtime knobs."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import (
    Discriminator,
    Field,
    SerializerFunctionWrapHandler,
    Tag,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from compresslab.recipe.schema_base import StrictModel, without_unset

Scalar = bool | int | float | str


class ParamRange(StrictModel):
    """A numeric range to search; integers if ``low`` and ``high`` are both integers."""

    low: float | int
    high: float | int
    step: float | int | None = Field(default=None, gt=0)
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> ParamRange:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) is above high ({self.high}): swap them")
        if self.log and self.low <= 0:
            raise ValueError("a log-scale range needs low > 0")
        if self.log and self.step is not None:
            raise ValueError("a range cannot have both `step` and `log: true`: drop one")
        return self

    @property
    def is_int(self) -> bool:
        """True when both bounds (and the step, if any) are integers."""
        return all(isinstance(v, int) and not isinstance(v, bool) for v in self._numbers())

    def _numbers(self) -> list[float | int]:
        return [self.low, self.high] + ([self.step] if self.step is not None else [])


class ParamChoices(StrictModel):
    """A categorical choice."""

    choices: list[Scalar | None] = Field(min_length=1)


def _param_kind(value: Any) -> str:
    if isinstance(value, dict | ParamChoices) and (
        isinstance(value, ParamChoices) or "choices" in value
    ):
        return "choices"
    if isinstance(value, dict | ParamRange):
        return "range"
    return "value"


# Tagged so that an error names the form the user meant (a range, choices or a fixed value),
# not every member of the union.
ParamSpec = Annotated[
    Annotated[ParamRange, Tag("range")]
    | Annotated[ParamChoices, Tag("choices")]
    | Annotated[Scalar, Tag("value")],
    Discriminator(_param_kind),
]
#: The tags of :data:`ParamSpec`'s forms and of :data:`Scalar`'s types, which pydantic puts in
#: an error's location (a message names the field, not the tag).
UNION_TAGS = {"range", "choices", "value", "bool", "int", "float", "str"}


class MethodSpec(StrictModel):
    """One compression method in the search space, with its parameters' ranges."""

    method: str = Field(min_length=1)
    params: dict[str, ParamSpec] = Field(default_factory=dict)


#: The valid range of each runtime knob (threads as energy.threads, batch sizes as
#: energy.batch_size, a GPU's power limit in watts).
RUNTIME_BOUNDS: dict[str, tuple[int, int]] = {
    "threads": (1, 1024),
    "batch_size": (1, 65536),
    "power_limit_w": (0, 5000),
}


class RuntimeSpec(StrictModel):
    """How the model is run, as search knobs: energy per inference depends on it too.

    Each knob is a fixed value, a range or choices (like method parameters); unset knobs keep
    ``energy.threads`` / ``energy.batch_size``.
    """

    threads: ParamSpec | None = None
    batch_size: ParamSpec | None = None
    #: NVIDIA GPUs only: the power limit (W) set through NVML while measuring, then restored.
    power_limit_w: ParamSpec | None = None
    #: Generative tasks only: keep the KV cache while generating (true, false, or choices).
    kv_cache: ParamSpec | None = None

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> Any:
        return without_unset(handler, self, ("kv_cache",))

    @field_validator("threads", "batch_size", "power_limit_w")
    @classmethod
    def _in_bounds(cls, spec: Any, info: ValidationInfo) -> Any:
        name = str(info.field_name)
        if spec is None:
            return spec
        if isinstance(spec, ParamRange):
            if name != "power_limit_w" and not spec.is_int:
                raise ValueError(f"`{name}` is an integer: use integer bounds")
            values: list[Any] = [spec.low, spec.high]
        elif isinstance(spec, ParamChoices):
            values = list(spec.choices)
        else:
            values = [spec]
        low, high = RUNTIME_BOUNDS[name]
        for v in values:
            if name == "power_limit_w":
                if isinstance(v, bool) or not isinstance(v, int | float):
                    raise ValueError(f"`power_limit_w` values must be watts > 0, not {v!r}")
                if not math.isfinite(v):
                    raise ValueError(f"{v} is not a finite number; valid: watts in (0, {high}]")
                if not 0 < v <= high:
                    raise ValueError(f"{v!r} is outside (0, {high}]; valid: watts in (0, {high}]")
                continue
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ValueError(f"`{name}` values must be integers >= 1, not {v!r}")
            if v > high:
                raise ValueError(
                    f"{v!r} is above the maximum {high}; valid: integer in [{low}, {high}]"
                )
        return spec

    @field_validator("kv_cache")
    @classmethod
    def _a_switch(cls, spec: Any) -> Any:
        if spec is None:
            return spec
        values = list(spec.choices) if isinstance(spec, ParamChoices) else [spec]
        if isinstance(spec, ParamRange) or not all(isinstance(v, bool) for v in values):
            shown = f"{spec.low}..{spec.high}" if isinstance(spec, ParamRange) else values
            raise ValueError(
                f"`kv_cache` is a switch, not {shown!r}; valid: true, false or "
                "{choices: [true, false]}"
            )
        return spec
