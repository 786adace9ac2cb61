"""The compression space of a recipe as Optuna sees it: stages, parameters, runtime knobs."""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from compresslab.bench import RUNTIME_KNOBS, Runtime, knob_availability
from compresslab.compress import STAGES, Step, VariantSpec, get_method, probe_methods
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

    def suggest_runtime(self, trial: Any) -> Runtime:
        """Ask the trial for each searched runtime knob."""
        values = {
            name: _suggest_param(trial, f"runtime.{name}", spec)
            for name, spec in self.runtime.items()
        }
        return Runtime(**values)

    def grid(self) -> list[dict[str, Any]]:
        """Every variant of the space as trial parameters (for exhaustive search).

        Raises:
            RecipeError: a continuous range has no ``step`` (the grid would be infinite).
        """
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
