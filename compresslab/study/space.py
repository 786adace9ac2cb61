"""The compression space of a recipe as Optuna sees it: stages, parameters, runtime knobs."""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from torch import nn

from compresslab.bench import RUNTIME_KNOBS, Runtime, knob_availability
from compresslab.compress import (
    STAGES,
    CompressContext,
    Step,
    VariantSpec,
    fit_method,
    get_method,
    probe_methods,
)
from compresslab.errors import RecipeError
from compresslab.recipe import MethodSpec, ParamChoices, ParamRange, RuntimeSpec


@dataclass(frozen=True)
class SearchSpace:
    """The recipe's methods that can run here, grouped by stage, and those left out (why).

    ``runtime`` holds the searched runtime knobs (``runtime.threads``, ``runtime.batch_size``).
    """

    by_stage: dict[str, list[MethodSpec]]
    skipped: dict[str, str]
    runtime: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: Values (``method.param=value``) left out because they cannot apply to the task's model
    #: and data, and why (see :meth:`fitted`).
    left_out: dict[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_recipe(
        cls, methods: Sequence[MethodSpec], runtime: RuntimeSpec | None = None
    ) -> SearchSpace:
        """Probe each method's capabilities; unavailable ones are skipped with their reason."""
        avail = probe_methods(m.method for m in methods)
        by_stage: dict[str, list[MethodSpec]] = {s: [] for s in STAGES}
        skipped = {}
        for m in methods:
            if avail[m.method]:
                by_stage[get_method(m.method).stage].append(m)
            else:
                skipped[m.method] = avail[m.method].reason
        knobs = {}
        for name in RUNTIME_KNOBS:
            spec = getattr(runtime, name) if runtime is not None else None
            if spec is None:
                continue
            here = knob_availability(name)
            if here:
                knobs[name] = spec
            else:
                skipped[f"runtime.{name}"] = here.reason
        return cls({s: v for s, v in by_stage.items() if v}, skipped, knobs)

    def fitted(
        self, model: nn.Module, ctx: CompressContext, methods: Sequence[MethodSpec]
    ) -> SearchSpace:
        """This space with what cannot apply to ``model`` and its data left out.

        Called once the task is loaded, before the first trial (``methods`` is the recipe's
        ``compression``, for the field of an error).

        Raises:
            RecipeError: a method cannot apply at all (one line per such method, naming it,
                why and the fix).
        """
        by_stage: dict[str, list[MethodSpec]] = {}
        left_out = dict(self.left_out)
        problems = []
        for stage, specs in self.by_stage.items():
            by_stage[stage] = []
            for spec in specs:
                fit = fit_method(spec, model, ctx)
                if fit.spec is None:
                    index = next(i for i, m in enumerate(methods) if m.method == spec.method)
                    problems.append(
                        RecipeError(
                            f"{spec.method} cannot apply to this task's model and data: "
                            f"{fit.left_out[spec.method]}; or remove it from `compression`",
                            field=f"compression.{index}.method",
                        )
                    )
                    continue
                by_stage[stage].append(fit.spec)
                left_out.update(fit.left_out)
        if problems:
            raise RecipeError.combine(problems)
        return dataclasses.replace(
            self, by_stage={s: v for s, v in by_stage.items() if v}, left_out=left_out
        )

    def suggest_runtime(self, trial: Any) -> Runtime:
        """Ask the trial for each searched runtime knob."""
        values = {
            name: _suggest_param(trial, f"runtime.{name}", spec)
            for name, spec in self.runtime.items()
        }
        return Runtime(**values)

    def size(self) -> int:
        """How many variants the space holds, counted without listing them.

        Raises:
            RecipeError: a continuous range has no ``step`` (the grid would be infinite).
        """
        return grid_size(self.by_stage, self.runtime)

    def grid(self) -> list[dict[str, Any]]:
        """Every variant of the space as trial parameters (for exhaustive search).

        Raises:
            RecipeError: a continuous range has no ``step`` (the grid would be infinite), or
                the space holds more than :data:`MAX_GRID` variants.
        """
        size = self.size()
        if size > MAX_GRID:
            raise RecipeError(grid_too_big(size), field="search.sampler")
        per_stage: list[list[dict[str, Any]]] = []
        for stage, methods in self.by_stage.items():
            options: list[dict[str, Any]] = [{stage: "none"}]
            for m in methods:
                axes: list[list[tuple[str, Any]]] = []
                for pname, pspec in m.params.items():
                    key = f"{m.method}.{pname}"
                    if isinstance(pspec, ParamRange):
                        axes.append([(key, v) for v in _range_values(pspec, key)])
                    elif isinstance(pspec, ParamChoices):
                        axes.append([(key, v) for v in pspec.choices])
                for combo in itertools.product(*axes):
                    options.append({stage: m.method, **dict(combo)})
            per_stage.append(options)
        for name, spec in self.runtime.items():
            key = f"runtime.{name}"
            if isinstance(spec, ParamRange):
                per_stage.append([{key: v} for v in _range_values(spec, key)])
            elif isinstance(spec, ParamChoices):
                per_stage.append([{key: v} for v in spec.choices])
        return [
            {k: v for part in combo for k, v in part.items()}
            for combo in itertools.product(*per_stage)
        ]

    def baseline_params(self) -> dict[str, str]:
        """Trial parameters of the uncompressed baseline (every stage ``none``)."""
        return {stage: "none" for stage in self.by_stage}

    def suggest(self, trial: Any) -> VariantSpec:
        """Ask the trial for one method (or none) per stage and its parameters."""
        steps = []
        for stage, methods in self.by_stage.items():
            choice = trial.suggest_categorical(stage, ["none", *[m.method for m in methods]])
            if choice == "none":
                continue
            spec = next(m for m in methods if m.method == choice)
            params = {
                pname: _suggest_param(trial, f"{choice}.{pname}", pspec)
                for pname, pspec in spec.params.items()
            }
            steps.append(Step(choice, params))
        return VariantSpec(tuple(steps))


def _suggest_param(trial: Any, key: str, pspec: Any) -> Any:
    """One parameter: a range, a choice, or a fixed value (not a trial parameter)."""
    if isinstance(pspec, ParamRange):
        if pspec.is_int:
            return trial.suggest_int(
                key, int(pspec.low), int(pspec.high), step=int(pspec.step or 1), log=pspec.log
            )
        return trial.suggest_float(
            key, float(pspec.low), float(pspec.high), step=pspec.step, log=pspec.log
        )
    if isinstance(pspec, ParamChoices):
        return trial.suggest_categorical(key, pspec.choices)
    return pspec


#: The most variants an exhaustive grid may list: the largest budget (``search.trials``).
MAX_GRID = 100_000


def grid_too_big(size: int) -> str:
    """Why a grid of ``size`` variants is refused, and what to do instead."""
    shown = str(size) if size < 10**12 else f"more than 10^{len(str(size)) - 1}"
    return (
        f"the grid has {shown} variants, more than the {MAX_GRID} a search can evaluate: give "
        "ranges coarser steps or fewer choices, or use search.sampler: nsga2 (or tpe, random), "
        "which never lists the space"
    )


def _count(pspec: Any, key: str) -> int:
    """Values of one parameter: a range's steps (counted, not listed), choices, or 1."""
    if isinstance(pspec, ParamChoices):
        return len(pspec.choices)
    if not isinstance(pspec, ParamRange):
        return 1
    if pspec.is_int:
        return len(range(int(pspec.low), int(pspec.high) + 1, int(pspec.step or 1)))
    if pspec.step is None:
        _range_values(pspec, key)  # raises the missing step's error
    assert pspec.step is not None
    steps = (pspec.high - pspec.low) / pspec.step
    if math.isfinite(steps):
        return int(math.floor(steps + 1e-9)) + 1  # as _range_values lists them
    # A step so small that the float quotient overflows: count exactly.
    return math.floor((Fraction(pspec.high) - Fraction(pspec.low)) / Fraction(pspec.step)) + 1


def grid_size(by_stage: Mapping[str, Sequence[MethodSpec]], runtime: Mapping[str, Any]) -> int:
    """Variants of a space: per stage, none or one method with each combination of its values.

    Raises:
        RecipeError: a continuous range has no ``step``.
    """
    size = 1
    for methods in by_stage.values():
        options = 1  # the stage left out
        for m in methods:
            combos = 1
            for pname, pspec in m.params.items():
                combos *= _count(pspec, f"{m.method}.{pname}")
            options += combos
        size *= options
    for name, spec in runtime.items():
        size *= _count(spec, f"runtime.{name}")
    return size


def recipe_grid_size(methods: Sequence[MethodSpec], runtime: RuntimeSpec | None) -> int:
    """:func:`grid_size` of a recipe's whole space (no method probed: what it asks for)."""
    by_stage: dict[str, list[MethodSpec]] = {}
    for m in methods:
        by_stage.setdefault(get_method(m.method).stage, []).append(m)
    knobs = {
        name: spec
        for name in RUNTIME_KNOBS
        if runtime is not None and (spec := getattr(runtime, name)) is not None
    }
    return grid_size(by_stage, knobs)


def categorical_choices(space: SearchSpace) -> int:
    """Categorical values a sampler chooses among: methods (and none) per stage, choices."""
    n = sum(1 + len(methods) for methods in space.by_stage.values())
    for methods in space.by_stage.values():
        n += sum(
            len(p.choices)
            for m in methods
            for p in m.params.values()
            if isinstance(p, ParamChoices)
        )
    n += sum(len(s.choices) for s in space.runtime.values() if isinstance(s, ParamChoices))
    return n


def _range_values(spec: ParamRange, key: str) -> list[Any]:
    if spec.is_int:
        return list(range(int(spec.low), int(spec.high) + 1, int(spec.step or 1)))
    if spec.step is None:
        raise RecipeError(
            f"an exhaustive grid needs a step for the continuous range '{key}': add `step` "
            "to it, or use another search.sampler (nsga2, tpe, gp, random)",
            field="search.sampler",
        )
    n = int(math.floor((spec.high - spec.low) / spec.step + 1e-9)) + 1
    return [round(spec.low + i * spec.step, 10) for i in range(n)]
