"""Causal language models as compresslab modules: the wrapper, greedy generation, workloads.

A causal task keeps every token tensor left-padded with :data:`PAD` (``-1``, no token), so a
batch of prompts of different lengths is one ``N x L`` LongTensor, and the attention mask and
positions follow from it. :class:`CausalLM` wraps a Hugging Face ``...ForCausalLM`` so that
``model(input_ids)`` returns logits like any other task's model: compression methods trace it,
profile it and quantize its linear layers (``lm_head`` is found as the output layer).

Generation is greedy (``do_sample=False``) through Hugging Face ``generate``. A measured
generation always produces exactly ``new_tokens`` tokens per prompt (``min_new_tokens`` holds
the end-of-sequence token back), so every variant does the same amount of work; answers shown
in reports stop at the end-of-sequence token instead.

Two workload runners (modules whose input only counts units, see
:class:`~compresslab.tasks.base.TaskWorkload`): :class:`GenerationRun` (one call generates
``new_tokens`` for each prompt of a batch: one unit per generated token) and
:class:`PrefillRun` (one forward over the prompts, filling the KV cache: one unit per request).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from compresslab.errors import VariantError
from compresslab.tasks.metrics import model_device

#: The id that marks "no token" (left padding) in a causal task's token tensors.
PAD = -1


def pad_left(rows: Sequence[Sequence[int]], *, width: int | None = None) -> torch.Tensor:
    """Token rows as one ``N x width`` LongTensor, left-padded with :data:`PAD`.

    Args:
        rows: token ids per row.
        width: the tensor's width (default: the longest row); longer rows are an error.
    """
    longest = max((len(r) for r in rows), default=0)
    width = longest if width is None else width
    if longest > width:
        raise ValueError(f"a row of {longest} tokens does not fit in width {width}")
    out = torch.full((len(rows), width), PAD, dtype=torch.long)
    for i, row in enumerate(rows):
        if len(row):
            out[i, width - len(row) :] = torch.tensor(list(row), dtype=torch.long)
    return out


def trim_left(ids: torch.Tensor) -> torch.Tensor:
    """``ids`` without the leading columns that are padding in every row."""
    real = (ids != PAD).any(dim=0)
    if not bool(real.any()):
        return ids[:, :0]
    first = int(torch.nonzero(real)[0])
    return ids[:, first:]


def row_tokens(ids: torch.Tensor) -> list[list[int]]:
    """The real tokens of each row (padding dropped)."""
    return [[int(t) for t in row if int(t) != PAD] for row in ids]


class CausalLM(nn.Module):
    """A Hugging Face causal language model called with left-padded token ids.

    ``forward(input_ids)`` takes an ``N x L`` LongTensor where :data:`PAD` marks padding on the
    left, derives the attention mask and the positions (so padding changes nothing), and
    returns the ``N x L x vocab`` logits.

    Attributes:
        lm: the Hugging Face model (e.g. ``LlamaForCausalLM``).
        pad_token_id: the id written where a row has no token (masked out).
        eos_token_id: the end-of-sequence id (answers stop there).
    """

    def __init__(self, lm: nn.Module, *, pad_token_id: int, eos_token_id: int | None) -> None:
        super().__init__()
        self.lm = lm
        self.pad_token_id = int(pad_token_id)
        self.eos_token_id = None if eos_token_id is None else int(eos_token_id)

    def _encode(self, input_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        # The ids follow the model (a GPU when the bench placed it there), as predict() does.
        device = model_device(self.lm)
        if device is not None and input_ids.device != device:
            input_ids = input_ids.to(device)
        mask = input_ids != PAD
        ids = torch.where(mask, input_ids, torch.full_like(input_ids, self.pad_token_id))
        positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
        return {"input_ids": ids, "attention_mask": mask.long(), "position_ids": positions}

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Next-token logits at every position (``N x L x vocab``)."""
        out: torch.Tensor = self.lm(**self._encode(input_ids), use_cache=False).logits
        return out

    def last_logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Next-token logits after the last token of each row (``N x vocab``)."""
        out = self.lm(**self._encode(input_ids), use_cache=False, logits_to_keep=1).logits
        return out[:, -1]

    def prefill(self, input_ids: torch.Tensor) -> torch.Tensor:
        """What a generation does first: one forward over the prompts, filling the KV cache.

        Returns the next-token logits of each row (``N x vocab``).
        """
        out = self.lm(**self._encode(input_ids), use_cache=True, logits_to_keep=1).logits
        return out[:, -1]

    def generate_ids(
        self,
        input_ids: torch.Tensor,
        *,
        new_tokens: int,
        kv_cache: bool = True,
        stop_at_eos: bool = False,
    ) -> torch.Tensor:
        """Greedy continuation of each prompt: ``N x new_tokens`` token ids (on the model's device).

        Args:
            input_ids: left-padded prompts.
            new_tokens: tokens generated per prompt.
            kv_cache: keep keys and values of earlier positions (else every step recomputes
                the whole sequence).
            stop_at_eos: stop a row at its end-of-sequence token (the rest of the row is
                :data:`PAD`); otherwise every row gets exactly ``new_tokens`` tokens.
        """
        from transformers import GenerationConfig

        enc = self._encode(input_ids)
        config = GenerationConfig(
            max_new_tokens=new_tokens,
            min_new_tokens=0 if stop_at_eos else new_tokens,
            do_sample=False,
            num_beams=1,
            use_cache=kv_cache,
            pad_token_id=self.pad_token_id,
            eos_token_id=self.eos_token_id,
        )
        out = self.lm.generate(  # type: ignore[operator]
            input_ids=enc["input_ids"],
            attention_mask=enc["attention_mask"],
            generation_config=config,
        )
        new = out[:, input_ids.shape[1] :]
        if new.shape[1] < new_tokens:  # every row stopped early
            fill = torch.full(
                (new.shape[0], new_tokens - new.shape[1]), PAD, dtype=new.dtype, device=new.device
            )
            new = torch.cat([new, fill], dim=1)
        if stop_at_eos and self.eos_token_id is not None:
            # The end-of-sequence token and whatever follows it (the pad id) are no answer.
            ended = (new == self.eos_token_id).long().cumsum(dim=1) > 0
            new = new.masked_fill(ended, PAD)
        elif not stop_at_eos and new.shape[1] != new_tokens:
            raise VariantError(
                f"generation produced {new.shape[1]} tokens instead of {new_tokens}: the "
                "variant stops generating early"
            )
        return new


def find_causal_lm(model: nn.Module) -> CausalLM:
    """The :class:`CausalLM` inside a variant (it may be wrapped, e.g. by a precision cast).

    Raises:
        VariantError: the model holds none.
    """
    for module in model.modules():
        if isinstance(module, CausalLM):
            return module
    raise VariantError(
        f"{type(model).__name__} holds no compresslab CausalLM: a causal task's model must be "
        "compresslab.tasks.generation.CausalLM (or a variant built from one)"
    )


def check_finite(logits: torch.Tensor) -> torch.Tensor:
    """``logits`` as float32, or a VariantError when any is NaN or infinite."""
    out = logits.float()
    if not torch.isfinite(out).all():
        raise VariantError(
            "the variant produced NaN or infinite logits: it is numerically broken "
            "(too aggressive a compression); this trial is recorded as failed"
        )
    return out


def _beside(tensor: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """``tensor`` on ``model``'s device (itself when it is there, or the model has no weights)."""
    device = model_device(model)
    return tensor if device is None or tensor.device == device else tensor.to(device)


class GenerationRun(nn.Module):
    """One call: greedy generation of ``new_tokens`` tokens for every prompt of a batch.

    Its input only counts units (``prompts x new_tokens`` rows, no columns): the measurement
    protocol reports energy per generated token.
    """

    def __init__(
        self, model: nn.Module, prompts: torch.Tensor, *, new_tokens: int, kv_cache: bool = True
    ) -> None:
        super().__init__()
        self.model = model
        # A buffer, so that the prompts move with the runner (``.to(device)``) and the model.
        self.prompts: torch.Tensor
        self.register_buffer("prompts", _beside(prompts, model), persistent=False)
        self.new_tokens = new_tokens
        self.kv_cache = kv_cache

    def units(self) -> torch.Tensor:
        """The input of one call: one empty row per generated token (beside the prompts)."""
        n = self.prompts.shape[0] * self.new_tokens
        return torch.zeros(n, 0, dtype=torch.long, device=self.prompts.device)

    def forward(self, units: torch.Tensor) -> torch.Tensor:
        """Generate; returns the generated ids (``prompts x new_tokens``)."""
        return find_causal_lm(self.model).generate_ids(
            self.prompts, new_tokens=self.new_tokens, kv_cache=self.kv_cache
        )


class PrefillRun(nn.Module):
    """One call: the prefill of a batch of prompts (one forward, KV cache filled).

    Its input counts requests (one empty row per prompt).
    """

    def __init__(self, model: nn.Module, prompts: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        self.prompts: torch.Tensor
        self.register_buffer("prompts", _beside(prompts, model), persistent=False)

    def units(self) -> torch.Tensor:
        """The input of one call: one empty row per request (beside the prompts)."""
        return torch.zeros(self.prompts.shape[0], 0, dtype=torch.long, device=self.prompts.device)

    def forward(self, units: torch.Tensor) -> torch.Tensor:
        """Prefill; returns the next-token logits of each prompt."""
        return find_causal_lm(self.model).prefill(self.prompts)


def decode_rows(tokenizer: Any, ids: torch.Tensor) -> list[str]:
    """Each row's real tokens as text (special tokens dropped)."""
    return [str(tokenizer.decode(row, skip_special_tokens=True)).strip() for row in row_tokens(ids)]
