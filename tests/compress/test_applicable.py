"""Which methods (and values) can apply to a model and its data, found before any trial."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from compresslab.compress import METHODS, CompressContext, fit_method
from compresslab.recipe import MethodSpec, ParamChoices, ParamRange

MLP = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
X = torch.randn(4, 8)
NO_DATA = CompressContext(example_inputs=X[:2])
WITH_DATA = CompressContext(
    example_inputs=X[:2], train_inputs=X, train_labels=torch.zeros(4).long()
)


def applicable(name: str, ctx: CompressContext, model: nn.Module = MLP, **params: object):  # type: ignore[no-untyped-def]
    method = METHODS[name]
    return method.applicable(model, method.resolve(params), ctx)


def test_head_pruning_needs_attention_modules(tiny_bert: Any) -> None:
    here = applicable("prune_heads", WITH_DATA)
    assert not here and "found none in Sequential: use prune_channels" in here.reason
    assert applicable("prune_heads", tiny_bert.ctx, tiny_bert.model)


def test_recovery_and_taylor_need_training_data(tiny_bert: Any) -> None:
    for name in ("prune_channels", "prune_heads", "sparsity"):
        model = tiny_bert.model if name == "prune_heads" else MLP
        no = applicable(name, NO_DATA, model, recovery_epochs=5)
        assert not no and "recovery_epochs > 0 needs training data" in no.reason, name
        assert applicable(name, NO_DATA, model, recovery_epochs=0), name
    assert applicable("prune_channels", WITH_DATA, recovery_epochs=5)
    taylor = applicable("prune_channels", NO_DATA, importance="taylor")
    assert not taylor and "importance 'taylor' needs training data" in taylor.reason
    assert applicable("prune_channels", WITH_DATA, importance="taylor")


def test_other_methods_apply_to_any_model() -> None:
    for name in ("dynamic_int8", "bf16", "fp16", "bnb_int8"):
        assert applicable(name, NO_DATA), name


def test_values_that_cannot_apply_are_left_out_with_the_reason() -> None:
    spec = MethodSpec(
        method="prune_channels",
        params={
            "ratio": ParamRange(low=0.1, high=0.5, step=0.1),
            "importance": ParamChoices(choices=["l2", "taylor", "fpgm"]),
            "recovery_epochs": ParamRange(low=0, high=3),
        },
    )
    fit = fit_method(spec, MLP, NO_DATA)
    assert fit.spec is not None
    assert fit.spec.params["importance"] == ParamChoices(choices=["l2", "fpgm"])
    assert fit.spec.params["recovery_epochs"] == 0  # 1, 2 and 3 need training data
    assert fit.spec.params["ratio"] == spec.params["ratio"]
    assert set(fit.left_out) == {
        "prune_channels.importance='taylor'",
        "prune_channels.recovery_epochs=1",
        "prune_channels.recovery_epochs=2",
        "prune_channels.recovery_epochs=3",
    }
    assert "needs training data" in fit.left_out["prune_channels.importance='taylor'"]
    # With training data, nothing is left out.
    assert fit_method(spec, MLP, WITH_DATA).spec == spec


def test_a_method_that_cannot_apply_at_all_has_no_spec() -> None:
    heads = fit_method(MethodSpec(method="prune_heads"), MLP, WITH_DATA)
    assert (
        heads.spec is None
        and "prune_heads needs a BERT-style encoder" in heads.left_out["prune_heads"]
    )
    fixed = fit_method(MethodSpec(method="sparsity", params={"recovery_epochs": 5}), MLP, NO_DATA)
    assert fixed.spec is None and "recovery_epochs > 0" in fixed.left_out["sparsity"]
