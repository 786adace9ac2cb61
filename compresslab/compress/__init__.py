"""Compression methods, one module each, behind :class:`CompressionMethod` and a registry.

A variant is a :class:`VariantSpec`: at most one method per stage, applied in the order of
:data:`STAGES` (prune, then sparsify, then quantize). :func:`build_variant` deep-copies the
base model first, so the base model is never mutated. What a step could not do on some layers
is noted on the model (:func:`add_note`); the built model carries every step's notes
(:func:`notes_of`).

Methods by stage:

- prune: ``prune_channels`` (:mod:`.prune`), ``prune_heads`` (BERT-style encoders),
  ``prune_llm`` (Llama-style decoders: KV groups, MLP channels, whole blocks; :mod:`.llm_prune`).
- sparsify: ``sparsity`` (:mod:`.sparsify`).
- quantize: ``dynamic_int8`` (:mod:`.quantize`), ``bnb_int8`` and ``bnb_4bit`` (:mod:`.bnb`),
  ``torchao_int8_weight_only`` and ``torchao_int8_dynamic`` (:mod:`.ao`), ``bf16`` and
  ``fp16`` (:mod:`.precision`).
"""

from __future__ import annotations

import copy
import difflib
import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from compresslab.availability import Availability
from compresslab.compress.ao import TorchaoInt8Dynamic, TorchaoInt8WeightOnly
from compresslab.compress.base import (
    NOTES_ATTR,
    STAGES,
    Applied,
    BuildTrace,
    CompressContext,
    CompressionMethod,
    ParamDef,
    Step,
    StepRecord,
    VariantSpec,
    add_note,
    notes_of,
)
from compresslab.compress.bnb import Bnb4bit, BnbInt8
from compresslab.compress.capabilities import capabilities
from compresslab.compress.llm_prune import LlmPruning
from compresslab.compress.precision import Bf16, Fp16
from compresslab.compress.prune import ChannelPruning, HeadPruning
from compresslab.compress.quantize import DynamicInt8
from compresslab.compress.sparsify import MagnitudeSparsity
from compresslab.errors import VariantError
from compresslab.recipe import MethodSpec, ParamChoices, ParamRange

__all__ = [
    "METHODS",
    "STAGES",
    "Applied",
    "BuildTrace",
    "CompressContext",
    "CompressionMethod",
    "Fitted",
    "ParamDef",
    "Step",
    "StepRecord",
    "VariantSpec",
    "add_note",
    "build_variant",
    "capabilities",
    "check_space",
    "fit_method",
    "get_method",
    "notes_of",
    "probe_methods",
]

#: Every method by the name a recipe uses.
METHODS: dict[str, CompressionMethod] = {
    m.name: m
    for m in (
        ChannelPruning(),
        HeadPruning(),
        LlmPruning(),
        MagnitudeSparsity(),
        DynamicInt8(),
        BnbInt8(),
        Bnb4bit(),
        TorchaoInt8WeightOnly(),
        TorchaoInt8Dynamic(),
        Bf16(),
        Fp16(),
    )
}


def get_method(name: str) -> CompressionMethod:
    """The registered method called ``name``."""
    try:
        return METHODS[name]
    except KeyError:
        raise VariantError(
            f"unknown compression method '{name}': use one of {', '.join(METHODS)}"
        ) from None


def check_space(methods: Iterable[MethodSpec]) -> list[tuple[tuple[Any, ...], str]]:
    """Problems in a recipe's ``compression`` list, as (location, message) pairs.

    Checks method names, parameter names, and that every fixed value, range bound and choice
    lies in the method's declared domain.
    """
    problems: list[tuple[tuple[Any, ...], str]] = []
    seen: set[str] = set()
    for i, spec in enumerate(methods):
        loc: tuple[Any, ...] = ("compression", i, "method")
        method = METHODS.get(spec.method)
        if method is None:
            problems.append(
                (loc, f"unknown method '{spec.method}': {_suggest(spec.method, METHODS)}")
            )
            continue
        if spec.method in seen:
            problems.append((loc, f"method '{spec.method}' is listed twice: merge the entries"))
        seen.add(spec.method)
        for pname, pspec in spec.params.items():
            ploc = ("compression", i, "params", pname)
            pdef = method.params.get(pname)
            if pdef is None:
                valid = ", ".join(method.params) or "none"
                close = difflib.get_close_matches(pname, list(method.params), n=1, cutoff=0.6)
                problems.append(
                    (
                        ploc,
                        f"'{spec.method}' has no parameter '{pname}'"
                        + (f": did you mean '{close[0]}'?" if close else "")
                        + f" (its parameters: {valid})",
                    )
                )
                continue
            if isinstance(pspec, ParamRange):
                if pdef.kind not in ("float", "int"):
                    problems.append(
                        (ploc, f"a range needs a numeric parameter; use {pdef.describe()}")
                    )
                    continue
                if pdef.kind == "int" and not pspec.is_int:
                    problems.append((ploc, "this parameter is an integer: use integer bounds"))
                values: list[Any] = [pspec.low, pspec.high]
            elif isinstance(pspec, ParamChoices):
                values = list(pspec.choices)
            else:
                values = [pspec]
            for v in values:
                why = pdef.problem(v)
                if why:
                    problems.append((ploc, f"{why}; valid: {pdef.describe()}"))
                    break
    return problems


def _suggest(name: str, known: Iterable[str]) -> str:
    """``did you mean 'x'? (...)`` for a misspelt name, else the list to pick from."""
    known = list(known)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    listed = f"use one of {', '.join(known)}"
    return f"did you mean '{close[0]}'? ({listed})" if close else listed


#: Above this many combinations of a method's values, each value is tried on its own.
_MAX_COMBINATIONS = 4096


@dataclass(frozen=True)
class Fitted:
    """A method's part of the space, fitted to one model and its data.

    Attributes:
        spec: the method with the values that cannot apply left out (None: nothing applies).
        left_out: what was left out (``param=value``, or the method) and why.
    """

    spec: MethodSpec | None
    left_out: dict[str, str]


def _candidates(pspec: Any) -> list[Any]:
    """The values of a parameter that are tried.

    Choices, an integer range's values (up to 64, else its ends), a float range's ends, or the
    fixed value.
    """
    if isinstance(pspec, ParamChoices):
        return list(pspec.choices)
    if isinstance(pspec, ParamRange):
        if pspec.is_int:
            values = range(int(pspec.low), int(pspec.high) + 1, int(pspec.step or 1))
            return list(values) if len(values) <= 64 else [values[0], values[-1]]
        return [pspec.low, pspec.high]
    return [pspec]


def fit_method(spec: MethodSpec, model: nn.Module, ctx: CompressContext) -> Fitted:
    """Leave out of ``spec`` the values that cannot apply to ``model`` and the task's data.

    Every combination of the candidate values (:meth:`CompressionMethod.applicable`) is tried
    when there are at most a few thousand, else each value with the others at their first. A
    value none of whose combinations applies is left out: a choice is dropped, an integer
    range becomes the choices that remain. A float range is kept whole (its inside cannot be
    tried); its trials may fail with the reason, which is noted.
    """
    method = get_method(spec.method)
    axes = {p: _candidates(v) for p, v in spec.params.items()}
    names = list(axes)
    n_combos = math.prod(len(v) for v in axes.values())
    if n_combos <= _MAX_COMBINATIONS:
        combos = [dict(zip(names, c, strict=True)) for c in itertools.product(*axes.values())]
    else:
        first = {p: v[0] for p, v in axes.items()}
        combos = [first | {p: v} for p, values in axes.items() for v in values]
    results = [(c, method.applicable(model, method.resolve(c), ctx)) for c in combos]
    if not any(a for _, a in results):
        return Fitted(None, {spec.method: results[0][1].reason})
    left_out: dict[str, str] = {}
    params = dict(spec.params)
    for pname, values in axes.items():
        pspec = spec.params[pname]
        if len(values) < 2:
            continue
        bad = {}
        for v in values:
            tried = [a for c, a in results if c[pname] == v]
            if tried and not any(tried):
                bad[repr(v)] = tried[0].reason
        if not bad:
            continue
        keep = [v for v in values if repr(v) not in bad]
        if isinstance(pspec, ParamRange) and not pspec.is_int:
            why = next(iter(bad.values()))
            left_out[f"{spec.method}.{pname}"] = f"kept whole (a float range), may fail: {why}"
            continue
        params[pname] = ParamChoices(choices=keep) if len(keep) > 1 else keep[0]
        for shown, why in bad.items():
            left_out[f"{spec.method}.{pname}={shown}"] = why
    return Fitted(MethodSpec(method=spec.method, params=params), left_out)


def probe_methods(names: Iterable[str]) -> dict[str, Availability]:
    """Whether each named method can run on this machine (before any trial)."""
    return {n: get_method(n).available() for n in names}


def build_variant(
    base: nn.Module,
    spec: VariantSpec,
    ctx: CompressContext,
    *,
    trace: BuildTrace | None = None,
) -> nn.Module:
    """A new model: ``base`` deep-copied, then each step applied in stage order.

    Building is deterministic: the same base, spec and context give the same weights (seeded
    from ``ctx.seed``; torch's global RNG is left as it was). The result carries the notes
    of every step in order (:func:`notes_of`), also when a step returns a new model.

    Args:
        base: the trained base model (never mutated).
        spec: the steps.
        ctx: example inputs, layers to keep, seed and training data.
        trace: when given, filled with each step's resolved parameters, pruning history and
            the float model before the quantize stage (what an export needs).

    Raises:
        VariantError: a step is out of order, unknown, or fails on this model.
    """
    # Pruning and recovery need autograd, also when the caller is in inference mode (a copy
    # made there would hold inference tensors that autograd refuses).
    with torch.inference_mode(False), torch.enable_grad():
        return _build(base, spec, ctx, trace)


def _build(
    base: nn.Module, spec: VariantSpec, ctx: CompressContext, trace: BuildTrace | None
) -> nn.Module:
    model = copy.deepcopy(base)
    model.eval()
    last_stage = -1
    for step in spec.steps:
        method = get_method(step.method)
        stage_index = STAGES.index(method.stage)
        if stage_index <= last_stage:
            raise VariantError(
                f"step '{step.method}' ({method.stage}) comes after a later or equal stage: "
                f"stages run in the order {' -> '.join(STAGES)}, one method each"
            )
        last_stage = stage_index
        params: Mapping[str, Any] = method.resolve(step.params)
        if trace is not None and method.stage == "quantize" and trace.float_model is None:
            trace.float_model = copy.deepcopy(model)
        earlier = notes_of(model)
        applied = method.apply_step(model, params, ctx)
        later = notes_of(applied.model)
        if later[: len(earlier)] != earlier:  # a new model (e.g. a wrapper) lost the notes
            setattr(applied.model, NOTES_ATTR, earlier + later)
        model = applied.model
        model.eval()
        if trace is not None:
            trace.steps.append(
                StepRecord(step.method, method.stage, dict(params), applied.pruning_history)
            )
    if trace is not None and trace.float_model is None:
        trace.float_model = model
    return model
