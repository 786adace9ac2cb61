"""The small interface of a compression method, its parameter domains and the variant spec."""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from compresslab.availability import Availability

#: Stages run in this order: structure first (prune), then zeros inside the remaining weights
#: (sparsify), then number formats (quantize/precision).
STAGES: tuple[str, ...] = ("prune", "sparsify", "quantize")

#: The attribute of a model that holds its notes (a list of str; see :func:`add_note`).
NOTES_ATTR = "_compresslab_notes"


def add_note(model: nn.Module, text: str) -> None:
    """Append a human-readable note to ``model``: what a step left undone here, and why.

    A method notes on the model it returns (e.g. "bnb_4bit: 2 of 5 linear layers kept in
    float32 ..."); :func:`~compresslab.compress.build_variant` carries the notes of earlier
    steps onto later models, and the bench records :func:`notes_of` with each trial.
    """
    setattr(model, NOTES_ATTR, [*notes_of(model), str(text)])


def notes_of(model: nn.Module) -> list[str]:
    """The notes on ``model`` in order (after ``build_variant``: every step's)."""
    return list(getattr(model, NOTES_ATTR, None) or [])


@dataclass(frozen=True)
class ParamDef:
    """The valid domain of one method parameter, used to check recipes before any work."""

    kind: Literal["float", "int", "bool", "choice"]
    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()
    doc: str = ""

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is outside this domain, or None when it is valid."""
        if self.kind == "bool":
            return None if isinstance(value, bool) else f"expected true or false, got {value!r}"
        if self.kind == "choice":
            if value in self.choices:
                return None
            return f"{value!r} is not one of {', '.join(map(str, self.choices))}"
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"expected a number, got {value!r}"
        if not math.isfinite(value):
            return f"{value!r} is not a finite number"
        if self.kind == "int" and not float(value).is_integer():
            return f"expected an integer, got {value!r}"
        if self.low is not None and value < self.low:
            return f"{value!r} is below the minimum {self.low:g}"
        if self.high is not None and value > self.high:
            return f"{value!r} is above the maximum {self.high:g}"
        return None

    def describe(self) -> str:
        """E.g. ``float in [0.05, 0.95]`` or ``one of l1, l2``."""
        if self.kind == "choice":
            return "one of " + ", ".join(map(str, self.choices))
        if self.kind == "bool":
            return "true or false"
        return f"{self.kind} in [{self.low:g}, {self.high:g}]"


@dataclass(frozen=True)
class CompressContext:
    """What a method may need beyond the model: real example inputs and layers to keep."""

    example_inputs: torch.Tensor
    keep_modules: tuple[str, ...] = ()
    seed: int = 0
    train_inputs: torch.Tensor | None = None
    train_labels: torch.Tensor | None = None
    #: Where the variant will run (``energy.device``). Building happens on the CPU; only
    #: methods whose layers quantize when moved to a device (bitsandbytes) use it, so that
    #: they quantize there, with that device's kernels and layout.
    device: str = "cpu"


@dataclass
class Applied:
    """What one step produced: the new model and, for structural steps, how to redo them.

    Attributes:
        model: the compressed model.
        pruning_history: torch-pruning's ``pruner.pruning_history()`` (a list of
            ``[module_name, is_out_channel_pruning, indices]``) when the step removed channels
            or heads; ``None`` otherwise. An export stores it to rebuild the structure.
    """

    model: nn.Module
    pruning_history: list[list[Any]] | None = None


class CompressionMethod(ABC):
    """One compression method. Subclasses are small and registered by ``name``.

    ``apply`` returns a *new* model and never mutates its input (the registry deep-copies
    before calling it, and methods must not keep references to the input). What a method
    could not do on some layers, it says with :func:`add_note` on the model it returns.
    """

    name: ClassVar[str]
    stage: ClassVar[str]
    summary: ClassVar[str]
    params: ClassVar[Mapping[str, ParamDef]] = {}

    def available(self) -> Availability:
        """Whether this method can run on this machine (probed before the search)."""
        return Availability(True, "no special requirement")

    def applicable(
        self, model: nn.Module, params: Mapping[str, Any], ctx: CompressContext
    ) -> Availability:
        """Whether this method can apply to ``model`` and the task's data, and why not.

        ``params`` are concrete values with the defaults filled in. Checked once the task is
        loaded, before the first trial, for the values the recipe's space holds: a method that
        cannot apply at all is a bad recipe, values that cannot apply are left out of the
        search. It must be cheap: look at the model's structure and the context, never build
        a variant. By default every method applies.
        """
        return Availability(True, "applies to any model")

    def resolve(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults filled in for every declared parameter not in ``given``."""
        out = {k: d.default for k, d in self.params.items()}
        out.update(given)
        return out

    @abstractmethod
    def apply(self, model: nn.Module, params: Mapping[str, Any], ctx: CompressContext) -> nn.Module:
        """Compress ``model`` (already a private copy) with ``params`` and return the result."""

    def apply_step(
        self, model: nn.Module, params: Mapping[str, Any], ctx: CompressContext
    ) -> Applied:
        """Like :meth:`apply`, and also report what an export needs (the pruning history).

        Structural methods override this and implement :meth:`apply` on top of it.
        """
        return Applied(self.apply(model, params, ctx))

    def restore_structure(
        self,
        model: nn.Module,
        params: Mapping[str, Any],
        ctx: CompressContext,
        *,
        pruning_history: list[list[Any]] | None,
    ) -> nn.Module:
        """Give a fresh copy of the base model the shapes this step produced (no weights).

        Used when loading an export: the weights come from the artefact afterwards. Methods
        that do not change shapes return ``model`` as it is.
        """
        return model


@dataclass(frozen=True)
class Step:
    """One applied method with its concrete parameters."""

    method: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def label(self) -> str:
        """E.g. ``prune_channels(ratio=0.3, importance=l2)``."""
        if not self.params:
            return self.method
        inner = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(self.params.items()))
        return f"{self.method}({inner})"


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


@dataclass(frozen=True)
class StepRecord:
    """One step as it was applied while building a variant (what an export writes).

    Attributes:
        method: the method's name.
        stage: its stage.
        params: every parameter, defaults filled in.
        pruning_history: torch-pruning's history for structural steps, else None.
    """

    method: str
    stage: str
    params: Mapping[str, Any]
    pruning_history: list[list[Any]] | None = None


@dataclass
class BuildTrace:
    """What :func:`~compresslab.compress.build_variant` records when asked (for exports).

    Attributes:
        steps: the applied steps in order.
        float_model: a copy of the model after the last step before the quantize stage (the
            float weights an export stores), or the final model when no quantize step ran.
    """

    steps: list[StepRecord] = field(default_factory=list)
    float_model: nn.Module | None = None


@dataclass(frozen=True)
class VariantSpec:
    """A variant: the ordered steps applied to the base model (empty = the baseline)."""

    steps: tuple[Step, ...] = ()

    @property
    def is_baseline(self) -> bool:
        """True when no compression is applied."""
        return not self.steps

    def label(self) -> str:
        """E.g. ``prune_channels(ratio=0.3) + dynamic_int8``; ``baseline`` when empty."""
        return " + ".join(s.label() for s in self.steps) or "baseline"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (for trial attributes and exports)."""
        return {"steps": [dataclasses.asdict(s) | {"params": dict(s.params)} for s in self.steps]}
