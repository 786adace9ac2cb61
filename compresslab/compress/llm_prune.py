"""Structured pruning of Llama-style decoders: key/value groups, MLP channels, whole blocks.

``prune_llm`` works on decoder blocks shaped like Hugging Face Llama's (``self_attn`` with
``q_proj``, ``k_proj``, ``v_proj``, ``o_proj``; ``mlp`` with ``gate_proj``, ``up_proj``,
``down_proj``), found by their attributes (Llama, SmolLM2, Mistral, Qwen2 ...). Three cuts,
in this order:

1. **Blocks** (``drop_blocks``): whole decoder blocks go, those whose output differs least
   from their input on calibration text ("block influence", 1 - cosine similarity, as in
   ShortGPT). Later blocks are renumbered (their KV-cache slot) and the config's layer count
   follows.
2. **Attention** (``head_ratio``): grouped-query attention shares each key/value head among
   several query heads, so heads go by whole **KV groups** (one key/value head and the query
   heads that read it): ``q_proj`` and ``o_proj`` lose the group's query heads, ``k_proj``
   and ``v_proj`` its key/value head; the query-per-key ratio stays what attention expects.
   Every block keeps at least one group.
3. **MLP** (``mlp_ratio``): intermediate channels go from ``gate_proj``/``up_proj`` (outputs)
   and ``down_proj`` (inputs) together.

Importance: ``activation`` (default) ranks a group or channel by what it adds to the block's
output on calibration text (the task's training inputs): a KV group by the norm of its part of
``o_proj``'s output, an MLP channel by its activation norm times its ``down_proj`` column norm
(Wanda-style); ``magnitude`` by the L2 norm of its weights in every layer it touches. The
channels are removed with torch-pruning's pruning functions; the removed indices are the
step's pruning history, which an export replays on a fresh copy of the base model.

No recovery fine-tuning is offered: a language model's recovery needs far more data and time
than one trial of a search has.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from compresslab.availability import Availability
from compresslab.compress.base import Applied, CompressContext, CompressionMethod, ParamDef
from compresslab.errors import VariantError

_INSTALL = "pip install 'torch-pruning>=1.6,<1.7'"

#: Calibration texts per forward pass.
_CALIBRATION_BATCH = 8

_ATTN = ("q_proj", "k_proj", "v_proj", "o_proj")
_MLP = ("gate_proj", "up_proj", "down_proj")


def _is_decoder_block(m: nn.Module) -> bool:
    attn, mlp = getattr(m, "self_attn", None), getattr(m, "mlp", None)
    return all(isinstance(getattr(attn, a, None), nn.Linear) for a in _ATTN) and all(
        isinstance(getattr(mlp, a, None), nn.Linear) for a in _MLP
    )


def decoder_blocks(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The name and the list of a model's Llama-style decoder blocks.

    Raises:
        VariantError: the model has none.
    """
    for name, module in model.named_modules():
        if (
            isinstance(module, nn.ModuleList)
            and len(module)
            and all(map(_is_decoder_block, module))
        ):
            return name, module
    raise VariantError(
        "prune_llm needs Llama-style decoder blocks (self_attn with q/k/v/o_proj, mlp with "
        "gate/up/down_proj) and found none in this model: use prune_channels or prune_heads"
    )


def _head_dim(attn: nn.Module) -> int:
    head = getattr(attn, "head_dim", None)
    if isinstance(head, int) and head > 0:
        return head
    raise VariantError("an attention module has no integer head_dim: cannot find whole heads")


def _groups(attn: Any) -> tuple[int, int, int]:
    """(key/value groups, query heads per group, head dimension) of an attention module."""
    d = _head_dim(attn)
    kv = attn.k_proj.out_features // d
    q = attn.q_proj.out_features // d
    if kv < 1 or q % kv or attn.k_proj.out_features % d:
        raise VariantError(f"attention widths q {q * d}, kv {kv * d} are not whole heads of {d}")
    return kv, q // kv, d


def _group_dims(g: int, per_group: int, d: int) -> list[int]:
    return list(range(g * per_group * d, (g + 1) * per_group * d))


@torch.no_grad()
def _calibrate(model: nn.Module, blocks: nn.ModuleList, inputs: torch.Tensor) -> dict[str, Any]:
    """Per block: what each KV group and MLP channel adds, and the block's influence."""
    n = len(blocks)
    group_sq: list[torch.Tensor | None] = [None] * n
    chan_sq: list[torch.Tensor | None] = [None] * n
    influence = [0.0] * n
    tokens = [0]
    real: list[torch.Tensor] = []  # the current batch's real (not padding) positions
    hooks = []

    def on_o(i: int, attn: Any) -> Any:
        kv, per, d = _groups(attn)

        def hook(_m: nn.Module, args: tuple[Any, ...]) -> None:
            x = args[0][real[0]].float()  # tokens x (heads * d)
            w = attn.o_proj.weight.float()
            sq = torch.stack(
                [
                    ((x[:, dims] @ w[:, dims].T) ** 2).sum()
                    for dims in (_group_dims(g, per, d) for g in range(kv))
                ]
            )
            prev = group_sq[i]
            group_sq[i] = sq if prev is None else prev + sq

        return hook

    def on_down(i: int) -> Any:
        def hook(_m: nn.Module, args: tuple[Any, ...]) -> None:
            sq = (args[0][real[0]].float() ** 2).sum(dim=0)
            prev = chan_sq[i]
            chan_sq[i] = sq if prev is None else prev + sq

        return hook

    def on_block(i: int) -> Any:
        def hook(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
            h_in = (args[0] if args else kwargs["hidden_states"])[real[0]].float()
            h_out = (out[0] if isinstance(out, tuple) else out)[real[0]].float()
            influence[i] += float((1 - torch.cosine_similarity(h_in, h_out, dim=-1)).sum())

        return hook

    for i, block in enumerate(blocks):
        attn: Any = block.self_attn
        mlp: Any = block.mlp
        hooks.append(attn.o_proj.register_forward_pre_hook(on_o(i, attn)))
        hooks.append(mlp.down_proj.register_forward_pre_hook(on_down(i)))
        hooks.append(block.register_forward_hook(on_block(i), with_kwargs=True))
    try:
        for start in range(0, inputs.shape[0], _CALIBRATION_BATCH):
            batch = inputs[start : start + _CALIBRATION_BATCH]
            # Token ids below zero are padding (the causal tasks' convention): not counted.
            mask = (
                batch >= 0
                if not batch.is_floating_point()
                else torch.ones_like(batch, dtype=torch.bool)
            )
            real[:] = [mask]
            tokens[0] += int(mask.sum())
            model(batch)
    finally:
        for h in hooks:
            h.remove()
    return {
        "group_sq": group_sq,
        "chan_sq": chan_sq,
        "influence": [v / max(tokens[0], 1) for v in influence],
    }


def _magnitude(block: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Group L2 importance of each KV group and each MLP channel from the weights alone."""
    attn, mlp = block.self_attn, block.mlp
    kv, per, d = _groups(attn)
    q_rows = attn.q_proj.weight.float().pow(2).sum(dim=1)
    k_rows = attn.k_proj.weight.float().pow(2).sum(dim=1) + attn.v_proj.weight.float().pow(2).sum(
        dim=1
    )
    o_cols = attn.o_proj.weight.float().pow(2).sum(dim=0)
    groups = torch.stack(
        [
            q_rows[_group_dims(g, per, d)].sum()
            + o_cols[_group_dims(g, per, d)].sum()
            + k_rows[g * d : (g + 1) * d].sum()
            for g in range(kv)
        ]
    )
    chans = (
        mlp.gate_proj.weight.float().pow(2).sum(dim=1)
        + mlp.up_proj.weight.float().pow(2).sum(dim=1)
        + mlp.down_proj.weight.float().pow(2).sum(dim=0)
    )
    return groups, chans


def _lowest(scores: torch.Tensor, k: int) -> list[int]:
    """Indices of the ``k`` lowest scores, ascending by index (ties: the lower index goes)."""
    if k <= 0:
        return []
    order = torch.argsort(scores.double(), stable=True)
    return sorted(int(i) for i in order[:k])


def _drop(model: nn.Module, container: str, dropped: list[int]) -> None:
    """Remove blocks ``dropped`` from the list ``container``; renumber and resize the config."""
    blocks = model.get_submodule(container)
    assert isinstance(blocks, nn.ModuleList)
    kept = [b for i, b in enumerate(blocks) if i not in set(dropped)]
    if not kept:
        raise VariantError("drop_blocks removes every block: lower drop_blocks")
    for i, block in enumerate(kept):
        attn: Any = block.self_attn
        if hasattr(attn, "layer_idx"):
            attn.layer_idx = i  # the block's slot in the KV cache
    parent_name, _, child = container.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, nn.ModuleList(kept))
    config = getattr(kept[0].self_attn, "config", None)
    if config is not None:
        # transformers runs `layers[: config.num_hidden_layers]` and sizes caches from it.
        config.num_hidden_layers = len(kept)
        types = getattr(config, "layer_types", None)
        if isinstance(types, list) and len(types) == len(blocks):
            config.layer_types = [t for i, t in enumerate(types) if i not in set(dropped)]


def _prune_linear(model: nn.Module, name: str, out: bool, idxs: list[int]) -> None:
    import torch_pruning as tp

    layer = model.get_submodule(name)
    if out:
        tp.prune_linear_out_channels(layer, idxs)
    else:
        tp.prune_linear_in_channels(layer, idxs)


def replay(model: nn.Module, history: list[list[Any]]) -> nn.Module:
    """Redo a ``prune_llm`` history on a fresh copy of the unpruned model (in place).

    Raises:
        VariantError: the history names modules the model does not have.
    """
    for name, out, idxs in history:
        try:
            module = model.get_submodule(str(name))
        except AttributeError as e:
            raise VariantError(
                f"cannot replay the pruning history: the model has no module {name} ({e}); the "
                "artefact was made from a different base model"
            ) from e
        if isinstance(module, nn.ModuleList):
            _drop(model, str(name), [int(i) for i in idxs])
        else:
            _prune_linear(model, str(name), bool(out), [int(i) for i in idxs])
    return model


@functools.cache
def _available() -> Availability:
    try:
        import torch_pruning as tp
    except ImportError as e:
        return Availability(False, f"torch-pruning is not installed ({e}): {_INSTALL}")
    try:
        lin = nn.Linear(8, 6)
        tp.prune_linear_out_channels(lin, [0, 1])
        tp.prune_linear_in_channels(lin, [2])
        lin(torch.zeros(1, 7))
    except Exception as e:  # torch-pruning raises plain exceptions
        return Availability(False, f"torch-pruning cannot prune linear layers here ({e})")
    if lin.weight.shape != (4, 7):
        return Availability(False, "torch-pruning did not prune a linear layer as expected")
    return Availability(True, "torch-pruning's linear pruning functions ran here")


class LlmPruning(CompressionMethod):
    """Remove KV groups, MLP channels and whole blocks of a Llama-style decoder."""

    name = "prune_llm"
    stage = "prune"
    summary = "Llama-style decoders: whole KV groups, MLP channels, whole blocks (torch-pruning)"
    params: ClassVar[Mapping[str, ParamDef]] = {
        "head_ratio": ParamDef(
            "float",
            0.0,
            low=0.0,
            high=0.9,
            doc="fraction of each block's key/value groups removed (rounded to whole groups; "
            "at least one stays)",
        ),
        "mlp_ratio": ParamDef(
            "float", 0.0, low=0.0, high=0.95, doc="fraction of each block's MLP channels removed"
        ),
        "drop_blocks": ParamDef(
            "int", 0, low=0, high=64, doc="whole decoder blocks removed (least influence first)"
        ),
        "importance": ParamDef(
            "choice",
            "activation",
            choices=("activation", "magnitude"),
            doc="rank by contribution on calibration text, or by weight norms",
        ),
        "keep_ends": ParamDef(
            "int", 0, low=0, high=16, doc="the first and last this many blocks stay whole"
        ),
        "round_to": ParamDef(
            "int", 1, low=1, high=128, doc="keep MLP widths multiples of this (kernel-friendly)"
        ),
    }

    def available(self) -> Availability:
        """Needs torch-pruning (its linear pruning functions)."""
        return _available()

    def apply(self, model: nn.Module, params: Mapping[str, Any], ctx: CompressContext) -> nn.Module:
        """Prune ``model`` in place (it is a private copy) and return it."""
        return self.apply_step(model, params, ctx).model

    def apply_step(
        self, model: nn.Module, params: Mapping[str, Any], ctx: CompressContext
    ) -> Applied:
        """Drop blocks, then prune KV groups and MLP channels; report the history."""
        head_ratio = float(params["head_ratio"])
        mlp_ratio = float(params["mlp_ratio"])
        n_drop = int(params["drop_blocks"])
        keep_ends = int(params["keep_ends"])
        if head_ratio == 0 and mlp_ratio == 0 and n_drop == 0:
            return Applied(model, pruning_history=[])
        container, blocks = decoder_blocks(model)
        n = len(blocks)
        inner = list(range(keep_ends, n - keep_ends))
        if n_drop > len(inner) - (0 if keep_ends else 1):
            raise VariantError(
                f"drop_blocks {n_drop} leaves no block to keep among {len(inner)} that may go "
                f"({n} blocks, keep_ends {keep_ends}): lower drop_blocks"
            )
        activation = str(params["importance"]) == "activation"
        stats: dict[str, Any] = {}
        if activation or n_drop:
            if ctx.train_inputs is None:
                raise VariantError(
                    "prune_llm ranks by calibration text (importance activation, drop_blocks) "
                    "and this task has no training inputs: use importance: magnitude and "
                    "drop_blocks: 0, or return train_inputs from the task"
                )
            model.eval()
            stats = _calibrate(model, blocks, ctx.train_inputs)
        history: list[list[Any]] = []
        dropped: list[int] = []
        if n_drop:
            influence = torch.tensor([stats["influence"][i] for i in inner])
            dropped = sorted(inner[i] for i in _lowest(influence, n_drop))
            _drop(model, container, dropped)
            history.append([container, False, dropped])
        pruned = model.get_submodule(container)
        assert isinstance(pruned, nn.ModuleList)
        originals = [i for i in range(n) if i not in set(dropped)]
        for new_i, old_i in enumerate(originals):
            if old_i < keep_ends or old_i >= n - keep_ends:
                continue
            block: Any = pruned[new_i]
            prefix = f"{container}.{new_i}"
            if activation:
                groups = stats["group_sq"][old_i].sqrt()
                chans = stats["chan_sq"][old_i].sqrt() * block.mlp.down_proj.weight.float().norm(
                    dim=0
                )
            else:
                groups, chans = _magnitude(block)
            history += self._prune_block(model, prefix, block, groups, chans, params)
        return Applied(model, pruning_history=history)

    def _prune_block(
        self,
        model: nn.Module,
        prefix: str,
        block: Any,
        groups: torch.Tensor,
        chans: torch.Tensor,
        params: Mapping[str, Any],
    ) -> list[list[Any]]:
        out: list[list[Any]] = []
        kv, per, d = _groups(block.self_attn)
        n_groups = min(kv - 1, math.floor(float(params["head_ratio"]) * kv + 0.5))
        gone = _lowest(groups, n_groups)
        if gone:
            q_idx = [i for g in gone for i in _group_dims(g, per, d)]
            kv_idx = [i for g in gone for i in range(g * d, (g + 1) * d)]
            for layer, is_out, idxs in (
                ("q_proj", True, q_idx),
                ("k_proj", True, kv_idx),
                ("v_proj", True, kv_idx),
                ("o_proj", False, q_idx),
            ):
                _prune_linear(model, f"{prefix}.self_attn.{layer}", is_out, idxs)
                out.append([f"{prefix}.self_attn.{layer}", is_out, idxs])
        width = block.mlp.gate_proj.out_features
        keep = width - math.floor(float(params["mlp_ratio"]) * width)
        r = int(params["round_to"])
        if r > 1:
            keep = min(width, max(r, round(keep / r) * r))
        chan_idx = _lowest(chans, width - keep)
        if chan_idx:
            for layer, is_out in (("gate_proj", True), ("up_proj", True), ("down_proj", False)):
                _prune_linear(model, f"{prefix}.mlp.{layer}", is_out, chan_idx)
                out.append([f"{prefix}.mlp.{layer}", is_out, chan_idx])
        return out

    def restore_structure(
        self,
        model: nn.Module,
        params: Mapping[str, Any],
        ctx: CompressContext,
        *,
        pruning_history: list[list[Any]] | None,
    ) -> nn.Module:
        """Replay the recorded history on a fresh copy of the base model."""
        return replay(model, pruning_history or [])
