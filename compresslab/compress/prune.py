"""Structured pruning with torch-pruning: whole channels or attention heads go, so MACs drop.

Two methods share the machinery here:

- ``prune_channels``: a fraction of the output channels of every prunable layer (convolutions,
  linear layers), ranked by an importance criterion.
- ``prune_heads``: whole attention heads and FFN intermediate width of Hugging Face BERT-style
  encoders (BERT, RoBERTa, MiniLM ...), with the attention modules' head counts updated so the
  model keeps working.

What is never pruned: the classifier (every layer whose output has the model's output shape,
found automatically), the modules the task names in ``keep_layers``, and embeddings (in a
transformer their width is the residual width shared by every layer). ``prune_channels`` also
keeps attention projections whole: removing single channels from them would break the head
layout; ``prune_heads`` is the method for attention.

Optional recovery fine-tunes on the task's training data afterwards, optionally distilling from
the unpruned model. Every step reports torch-pruning's pruning history, from which an export
rebuilds the pruned shapes (:meth:`CompressionMethod.restore_structure`).
"""

from __future__ import annotations

import functools
import logging
import math
from abc import abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from compresslab.availability import Availability
from compresslab.compress.base import Applied, CompressContext, CompressionMethod, ParamDef
from compresslab.compress.layers import named_keep_modules, output_layers
from compresslab.compress.recovery import (
    RECOVERY_PARAMS,
    recover,
    recovery_applicable,
    recovery_teacher,
    require_training_data,
)
from compresslab.errors import VariantError
from compresslab.versions import version_of

log = logging.getLogger(__name__)

IMPORTANCES = ("l1", "l2", "taylor", "fpgm", "lamp", "random")

#: Examples whose gradients rank channels for the ``taylor`` importance.
TAYLOR_EXAMPLES = 256
_TAYLOR_FIX = "it ranks channels by loss gradients; pick l1, l2, fpgm, lamp or random"


def _importance(name: str) -> Any:
    import torch_pruning as tp

    if name == "l1":
        return tp.importance.GroupMagnitudeImportance(p=1)
    if name == "l2":
        return tp.importance.GroupMagnitudeImportance(p=2)
    if name == "taylor":
        return tp.importance.GroupTaylorImportance()
    if name == "fpgm":
        return tp.importance.FPGMImportance()
    if name == "lamp":
        return tp.importance.LAMPImportance()
    if name == "random":
        return tp.importance.RandomImportance()
    raise VariantError(f"unknown importance '{name}': use one of {', '.join(IMPORTANCES)}")


def attention_modules(model: nn.Module) -> list[nn.Module]:
    """Hugging Face BERT-style self-attention modules, found by their attributes.

    A module qualifies when it has ``query``, ``key`` and ``value`` linear layers and integer
    ``num_attention_heads`` and ``attention_head_size`` (``BertSelfAttention`` and its copies
    in RoBERTa, ELECTRA, MiniLM ...).
    """
    return [
        m
        for m in model.modules()
        if all(isinstance(getattr(m, a, None), nn.Linear) for a in ("query", "key", "value"))
        and isinstance(getattr(m, "num_attention_heads", None), int)
        and isinstance(getattr(m, "attention_head_size", None), int)
    ]


def ffn_input_layers(model: nn.Module) -> list[nn.Linear]:
    """The first linear layer of each transformer FFN (``layer.intermediate.dense``)."""
    out = []
    for m in model.modules():
        dense = getattr(getattr(m, "intermediate", None), "dense", None)
        if isinstance(dense, nn.Linear) and hasattr(m, "output"):
            out.append(dense)
    return out


def sync_attention_heads(model: nn.Module) -> None:
    """Set each attention module's head counts from its (pruned) projection widths.

    transformers reshapes queries with ``attention_head_size`` and keeps
    ``num_attention_heads`` and ``all_head_size`` as attributes; all three must agree with the
    ``query``/``key``/``value`` widths after heads are removed.

    Raises:
        VariantError: the widths are not whole heads, or a module lost every head.
    """
    for module in attention_modules(model):
        m: Any = module  # a transformers attention module: attributes checked above
        head = int(m.attention_head_size)
        widths = {m.query.out_features, m.key.out_features, m.value.out_features}
        width = int(next(iter(widths)))
        if len(widths) != 1 or width % head:
            raise VariantError(
                f"attention projections have widths {sorted(widths)}, not whole heads of "
                f"{head}: head pruning went wrong; report this with the model's config"
            )
        if width == 0:
            raise VariantError(
                "pruning removed every head of an attention layer: lower head_ratio, or use "
                "global_pruning: false (which keeps the same number of heads in every layer)"
            )
        m.num_attention_heads = width // head
        m.all_head_size = width


def replay_pruning(
    model: nn.Module, history: list[list[Any]], example_inputs: torch.Tensor
) -> nn.Module:
    """Redo torch-pruning's ``history`` on a fresh copy of the unpruned model (in place)."""
    import torch_pruning as tp

    try:
        graph = tp.DependencyGraph().build_dependency(model, example_inputs=example_inputs)
        graph.load_pruning_history(history)
    except Exception as e:  # torch-pruning raises plain exceptions
        raise VariantError(
            f"cannot replay the pruning history on the base model ({e}): the artefact was "
            "made from a different base model; export it again from this task"
        ) from e
    return model


def _taylor_gradients(model: nn.Module, ctx: CompressContext) -> None:
    """Accumulate the loss gradient of a batch of training examples (for ``taylor``)."""
    x, y = require_training_data(ctx, what="importance 'taylor'", fix=_TAYLOR_FIX)
    gen = torch.Generator().manual_seed(ctx.seed)
    n = x.shape[0]
    idx = torch.randperm(n, generator=gen)[: min(n, TAYLOR_EXAMPLES)]
    model.eval()  # gradients without updating BatchNorm statistics or using dropout
    model.zero_grad(set_to_none=True)
    with torch.enable_grad():
        for start in range(0, idx.numel(), 64):
            batch = idx[start : start + 64]
            loss = F.cross_entropy(model(x[batch]), y[batch])
            (loss * batch.numel() / idx.numel()).backward()


@functools.cache
def _torch_pruning_available() -> Availability:
    """Prunes a tiny convolution-linear model with torch-pruning and runs it."""
    try:
        import torch_pruning as tp
    except ImportError as e:
        return Availability(
            False, f"torch-pruning is not installed ({e}): pip install 'torch-pruning>=1.6,<1.7'"
        )
    try:
        model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4, 2))
        x = torch.zeros(1, 1, 4, 4)
        pruner = tp.pruner.BasePruner(
            model,
            x,
            importance=tp.importance.GroupMagnitudeImportance(p=2),
            pruning_ratio=0.5,
            ignored_layers=[model[3]],
        )
        pruner.step()
        with torch.inference_mode():
            out = model(x)
    except Exception as e:  # torch-pruning raises plain exceptions
        return Availability(False, f"torch-pruning cannot prune with this torch ({e})")
    if model[0].out_channels != 4 or out.shape != (1, 2):
        return Availability(False, "torch-pruning did not prune a tiny model as expected")
    # The distribution's version: torch-pruning 1.6.1 still says 1.6.0 in __version__.
    version = version_of("torch-pruning") or tp.__version__
    return Availability(True, f"torch-pruning {version} pruned a tiny model here")


class _StructuredPruning(CompressionMethod):
    """What channel and head pruning share: importance, iterative steps, recovery, history."""

    stage = "prune"

    def available(self) -> Availability:
        """Needs the torch-pruning package."""
        return _torch_pruning_available()

    def applicable(
        self, model: nn.Module, params: Mapping[str, Any], ctx: CompressContext
    ) -> Availability:
        """Taylor importance and recovery fine-tuning need the task's training data."""
        if str(params.get("importance")) == "taylor" and (
            ctx.train_inputs is None or ctx.train_labels is None
        ):
            return Availability(
                False,
                "importance 'taylor' needs training data, and this task provides none: "
                f"{_TAYLOR_FIX}, or return train_inputs/train_labels from the task",
            )
        return recovery_applicable(params, ctx)

    def apply(self, model: nn.Module, params: Mapping[str, Any], ctx: CompressContext) -> nn.Module:
        """Prune ``model`` in place (it is a private copy) and return it."""
        return self.apply_step(model, params, ctx).model

    @abstractmethod
    def _nothing_to_do(self, params: Mapping[str, Any]) -> bool:
        """True when ``params`` remove nothing (the model is returned as it is)."""

    @abstractmethod
    def _make_pruner(
        self,
        model: nn.Module,
        params: Mapping[str, Any],
        ctx: CompressContext,
        keep: list[nn.Module],
    ) -> Any:
        """A torch-pruning pruner for ``model`` that leaves the ``keep`` modules whole."""

    def _after_step(self, model: nn.Module) -> None:
        """Called after every pruning step (e.g. to update head counts)."""

    def apply_step(
        self, model: nn.Module, params: Mapping[str, Any], ctx: CompressContext
    ) -> Applied:
        """Prune, optionally fine-tune, and report torch-pruning's history."""
        if self._nothing_to_do(params):
            return Applied(model, pruning_history=[])
        importance = str(params["importance"])
        epochs = int(params["recovery_epochs"])
        distill = float(params["distill"])
        steps = int(params["iterative_steps"])
        # Fail before any work when the training data a parameter needs is missing.
        if importance == "taylor":
            require_training_data(ctx, what="importance 'taylor'", fix=_TAYLOR_FIX)
        teacher = recovery_teacher(model, params, ctx)
        keep = output_layers(model, ctx.example_inputs)
        keep += named_keep_modules(model, ctx.keep_modules)
        keep += [m for m in model.modules() if isinstance(m, nn.Embedding)]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(ctx.seed)  # random importance and ties are reproducible
            try:
                pruner = self._make_pruner(model, params, ctx, keep)
            except VariantError:
                raise
            except Exception as e:  # torch-pruning raises plain exceptions on unsupported graphs
                raise VariantError(f"torch-pruning could not trace this model: {e}") from e
            for _ in range(steps):
                if importance == "taylor":
                    _taylor_gradients(model, ctx)
                try:
                    pruner.step()
                except Exception as e:
                    raise VariantError(f"torch-pruning could not prune this model: {e}") from e
                model.zero_grad(set_to_none=True)
                self._after_step(model)
                if epochs > 0:
                    recover(
                        model,
                        ctx,
                        epochs=epochs,
                        lr=float(params["recovery_lr"]),
                        teacher=teacher,
                        distill=distill,
                    )
        history = [list(h) for h in pruner.pruning_history()]
        model.eval()
        return Applied(model, pruning_history=history)

    def restore_structure(
        self,
        model: nn.Module,
        params: Mapping[str, Any],
        ctx: CompressContext,
        *,
        pruning_history: list[list[Any]] | None,
    ) -> nn.Module:
        """Replay the recorded pruning history on a fresh copy of the base model."""
        if pruning_history:
            replay_pruning(model, pruning_history, ctx.example_inputs)
            self._after_step(model)
        return model


class ChannelPruning(_StructuredPruning):
    """Remove a fraction of channels from every prunable layer, ranked by an importance."""

    name = "prune_channels"
    summary = "structured channel pruning (torch-pruning); the classifier is kept"
    params: ClassVar[Mapping[str, ParamDef]] = {
        "ratio": ParamDef(
            "float", 0.3, low=0.0, high=0.95, doc="fraction of channels removed per layer"
        ),
        "importance": ParamDef(
            "choice", "l2", choices=IMPORTANCES, doc="how channels are ranked before removal"
        ),
        "global_pruning": ParamDef(
            "bool", False, doc="rank channels across layers instead of per layer"
        ),
        "round_to": ParamDef(
            "int", 1, low=1, high=128, doc="keep channel counts multiples of this (kernel-friendly)"
        ),
        "iterative_steps": ParamDef(
            "int",
            1,
            low=1,
            high=20,
            doc="reach the ratio in this many steps (importance re-ranked, recovery after each)",
        ),
        **RECOVERY_PARAMS,
        "recovery_lr": ParamDef(
            "float", 1e-3, low=1e-6, high=0.1, doc="Adam learning rate of the recovery"
        ),
    }

    def _nothing_to_do(self, params: Mapping[str, Any]) -> bool:
        return float(params["ratio"]) == 0.0

    def _make_pruner(
        self,
        model: nn.Module,
        params: Mapping[str, Any],
        ctx: CompressContext,
        keep: list[nn.Module],
    ) -> Any:
        import torch_pruning as tp

        # Single channels of q/k/v cannot go without breaking the head layout: prune_heads.
        attns = attention_modules(model)
        for attn in attns:
            keep += [attn.query, attn.key, attn.value]  # type: ignore[list-item]
        if attns:
            log.info(
                "prune_channels keeps the %d attention modules whole (use prune_heads for heads)",
                len(attns),
            )
        round_to = int(params["round_to"])
        return tp.pruner.BasePruner(
            model,
            ctx.example_inputs,
            importance=_importance(str(params["importance"])),
            pruning_ratio=float(params["ratio"]),
            global_pruning=bool(params["global_pruning"]),
            iterative_steps=int(params["iterative_steps"]),
            ignored_layers=keep,
            round_to=round_to if round_to > 1 else None,
        )


class HeadPruning(_StructuredPruning):
    """Remove whole attention heads and FFN width from a BERT-style encoder."""

    name = "prune_heads"
    summary = "attention-head and FFN-width pruning of BERT-style encoders (torch-pruning)"
    params: ClassVar[Mapping[str, ParamDef]] = {
        "head_ratio": ParamDef(
            "float", 0.25, low=0.0, high=0.9, doc="fraction of attention heads removed per layer"
        ),
        "ffn_ratio": ParamDef(
            "float", 0.25, low=0.0, high=0.95, doc="fraction of FFN intermediate width removed"
        ),
        "importance": ParamDef(
            "choice", "l2", choices=IMPORTANCES, doc="how heads and FFN units are ranked"
        ),
        "global_pruning": ParamDef(
            "bool", False, doc="rank heads (and FFN units) across layers instead of per layer"
        ),
        "round_to": ParamDef(
            "int", 1, low=1, high=128, doc="keep FFN widths multiples of this (kernel-friendly)"
        ),
        "iterative_steps": ParamDef(
            "int",
            1,
            low=1,
            high=20,
            doc="reach the ratios in this many steps (importance re-ranked, recovery after each)",
        ),
        **RECOVERY_PARAMS,
        "recovery_lr": ParamDef(
            "float", 5e-5, low=1e-6, high=0.1, doc="Adam learning rate of the recovery"
        ),
    }

    def available(self) -> Availability:
        """Needs torch-pruning (transformers is only needed by the model itself)."""
        return _torch_pruning_available()

    def applicable(
        self, model: nn.Module, params: Mapping[str, Any], ctx: CompressContext
    ) -> Availability:
        """Needs BERT-style attention modules (and what every structured pruning needs)."""
        if not attention_modules(model):
            return Availability(
                False,
                f"prune_heads needs a BERT-style encoder (attention modules with query, key, "
                f"value and num_attention_heads) and found none in {type(model).__name__}: "
                "use prune_channels",
            )
        return super().applicable(model, params, ctx)

    def _nothing_to_do(self, params: Mapping[str, Any]) -> bool:
        return float(params["head_ratio"]) == 0.0 and float(params["ffn_ratio"]) == 0.0

    def _after_step(self, model: nn.Module) -> None:
        sync_attention_heads(model)

    def _make_pruner(
        self,
        model: nn.Module,
        params: Mapping[str, Any],
        ctx: CompressContext,
        keep: list[nn.Module],
    ) -> Any:
        import torch_pruning as tp

        attns = attention_modules(model)
        if not attns:
            raise VariantError(
                "prune_heads needs a BERT-style encoder (attention modules with query, key, value "
                "and num_attention_heads) and found none in this model: use prune_channels"
            )
        head_ratio = float(params["head_ratio"])
        ffn_ratio = float(params["ffn_ratio"])
        steps = int(params["iterative_steps"])
        glob = bool(params["global_pruning"])
        num_heads: dict[nn.Module, int] = {}
        ratios: dict[Any, float] = {}
        for a in attns:
            n = int(a.num_attention_heads)  # type: ignore[arg-type]
            if not glob and _ceil(head_ratio * n) >= n:
                raise VariantError(
                    f"head_ratio {head_ratio:g} removes all {n} heads of every layer: use a "
                    f"head_ratio below {(n - 1) / n:.3g}"
                )
            for lin in (a.query, a.key, a.value):
                num_heads[lin] = n  # type: ignore[index]
            # A width ratio > 0 lets torch-pruning visit the group; only whole heads go
            # (prune_head_dims=False), as many as head_ratio says.
            ratios[(a.query, a.key, a.value)] = head_ratio
        for dense in ffn_input_layers(model):
            ratios[dense] = ffn_ratio
        # Every other linear layer keeps its outputs: the hidden (residual) width, the pooler
        # and the classifier stay whole.
        others = [
            m
            for m in model.modules()
            if isinstance(m, nn.Linear) and m not in num_heads and m not in ratios
        ]
        round_to = int(params["round_to"])
        pruner = tp.pruner.BasePruner(
            model,
            ctx.example_inputs,
            importance=_importance(str(params["importance"])),
            pruning_ratio=0.0,
            pruning_ratio_dict=ratios,
            global_pruning=glob,
            iterative_steps=steps,
            ignored_layers=keep + others,
            round_to=round_to if round_to > 1 else None,
            num_heads=num_heads,
            prune_num_heads=head_ratio > 0,
            prune_head_dims=False,
            head_pruning_ratio=head_ratio,
        )
        if not glob and steps > 1 and head_ratio > 0:
            # torch-pruning 1.6 removes ceil(step ratio x *current* heads) per layer at each
            # step, which compounds (4 heads, 0.5, 2 steps: 3 removed). Ratios relative to the
            # heads left give the one-shot count, ceil(head_ratio x heads), spread over steps.
            n = int(attns[0].num_attention_heads)  # type: ignore[arg-type]
            pruner.per_step_head_pruning_ratio = _head_schedule(head_ratio, steps, n)
        return pruner


def _ceil(x: float) -> int:
    return math.ceil(x - 1e-9)


def _head_schedule(ratio: float, steps: int, heads: int) -> list[float]:
    """Per-step head ratios, relative to the heads left, that remove ceil(ratio x heads)."""
    out = [0.0]
    removed = 0
    for k in range(1, steps + 1):
        target = _ceil(ratio * k / steps * heads)
        now = target - removed
        left = heads - removed
        out.append((now - 0.5) / left if now > 0 else 0.0)
        removed = target
    return out
