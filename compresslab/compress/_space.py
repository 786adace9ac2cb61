"""A recipe's compression space against the registry: checked, then fitted to one model."""

from __future__ import annotations

import difflib
import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from torch import nn

from compresslab.compress._registry import METHODS, get_method
from compresslab.compress.base import CompressContext
from compresslab.recipe import MethodSpec, ParamChoices, ParamRange


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
