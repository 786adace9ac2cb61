"""Every method's parameter domains are checked before any work (compress.check_space)."""

from __future__ import annotations

from typing import Any

import pytest

from compresslab.compress import METHODS, check_space
from compresslab.recipe import MethodSpec


def _problems(method: str, params: dict[str, Any]) -> list[str]:
    spec = MethodSpec.model_validate({"method": method, "params": params})
    return [msg for _, msg in check_space([spec])]


@pytest.mark.parametrize(
    ("method", "params", "expected"),
    [
        ("prune_channels", {"importance": "hessian"}, "not one of l1, l2, taylor"),
        ("prune_channels", {"iterative_steps": 0}, "below the minimum 1"),
        ("prune_channels", {"iterative_steps": 2.5}, "expected an integer"),
        ("prune_channels", {"distill": 1.5}, "above the maximum 1"),
        ("prune_channels", {"recovery_lr": 0.0}, "below the minimum"),
        ("prune_heads", {"head_ratio": 0.95}, "above the maximum 0.9"),
        ("prune_heads", {"ffn_ratio": {"low": 0.1, "high": 0.99}}, "above the maximum 0.95"),
        ("prune_heads", {"ratio": 0.5}, "has no parameter 'ratio'"),
        ("prune_heads", {"global_pruning": "yes"}, "expected true or false"),
        ("sparsity", {"amount": 1.0}, "above the maximum 0.99"),
        ("sparsity", {"amount": {"choices": [0.5, -0.1]}}, "below the minimum 0"),
        ("sparsity", {"recovery_epochs": {"low": 0.5, "high": 2}}, "integer bounds"),
        ("bnb_int8", {"threshold": -1}, "below the minimum 0"),
        ("bnb_int8", {"keep_classifier": 1}, "expected true or false"),
        ("bnb_4bit", {"quant_type": "int4"}, "not one of nf4, fp4"),
        ("bnb_4bit", {"compute_dtype": "float16"}, "not one of float32, bfloat16"),
        ("bnb_4bit", {"blocksize": 48}, "not one of 32, 64, 128, 256"),
        ("bnb_4bit", {"blocksize": {"low": 32, "high": 64}}, "a range needs a numeric"),
        ("torchao_int8_dynamic", {"group_size": 32}, "has no parameter 'group_size'"),
        ("torchao_int8_weight_only", {"keep_classifier": "no"}, "expected true or false"),
    ],
)
def test_bad_parameters_are_refused_with_the_domain(method, params, expected) -> None:  # type: ignore[no-untyped-def]
    problems = _problems(method, params)
    assert any(expected in p for p in problems), problems
    # A message states what is valid: the parameter's domain, or the method's parameters.
    defs = METHODS[method].params
    (name,) = params
    domain = defs[name].describe() if name in defs else f"(its parameters: {', '.join(defs)})"
    assert any(domain in p for p in problems), (domain, problems)


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("prune_channels", {"importance": {"choices": ["taylor", "lamp"]}, "iterative_steps": 3}),
        ("prune_heads", {"head_ratio": {"low": 0.1, "high": 0.5}, "distill": 0.5}),
        ("sparsity", {"amount": {"low": 0.3, "high": 0.9, "step": 0.1}, "global_pruning": True}),
        ("bnb_int8", {"threshold": {"choices": [0.0, 6.0]}}),
        ("bnb_4bit", {"quant_type": {"choices": ["nf4", "fp4"]}, "blocksize": 128}),
        ("torchao_int8_dynamic", {"keep_classifier": False}),
    ],
)
def test_good_parameters_pass(method, params) -> None:  # type: ignore[no-untyped-def]
    assert _problems(method, params) == []


def test_every_default_lies_in_its_domain() -> None:
    for method in METHODS.values():
        for name, pdef in method.params.items():
            assert pdef.problem(pdef.default) is None, f"{method.name}.{name}"
            assert pdef.doc, f"{method.name}.{name} has no doc"
