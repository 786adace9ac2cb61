"""Text models as ``forward(input_ids) -> logits`` modules, and their offline loading.

A text task keeps ``Task.eval_inputs`` a tensor: texts are tokenized once to a fixed length
into an ``N x L`` LongTensor of input ids, padded with the tokenizer's pad id (0 for BERT
vocabularies). The wrappers here derive the attention mask as ``input_ids != pad_token_id``,
so a compressed variant is called exactly like the base model.

``transformers`` is imported lazily (it is heavy); every load is offline
(``local_files_only=True``), from a local folder.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from compresslab.errors import TaskError

log = logging.getLogger(__name__)


class MeanPoolClassifier(nn.Module):
    """A sentence encoder, mean pooling over real tokens, and a linear classifier.

    The sentence-transformers recipe (mean of the last hidden states where the mask is set,
    then L2 normalisation) followed by ``classifier``.

    Attributes:
        encoder: a Hugging Face encoder (e.g. ``BertModel``) returning ``last_hidden_state``.
        classifier: ``nn.Linear(hidden_size, num_classes)``.
        pad_token_id: the id that marks padding in ``input_ids``.
        normalize: L2-normalise the pooled embedding before the classifier.
    """

    def __init__(
        self,
        encoder: nn.Module,
        classifier: nn.Linear,
        *,
        pad_token_id: int = 0,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.classifier = classifier
        self.pad_token_id = pad_token_id
        self.normalize = normalize

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Pooled sentence embeddings (``N x hidden_size``) of a batch of input ids."""
        mask = input_ids != self.pad_token_id
        hidden = self.encoder(input_ids=input_ids, attention_mask=mask.long()).last_hidden_state
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        return F.normalize(pooled, dim=-1) if self.normalize else pooled

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Class logits (``N x num_classes``) of a batch of input ids (``N x L``)."""
        out: torch.Tensor = self.classifier(self.embed(input_ids))
        return out


class SequenceClassifier(nn.Module):
    """A Hugging Face ``...ForSequenceClassification`` model called with input ids only.

    Attributes:
        model: the Hugging Face model (e.g. ``BertForSequenceClassification``, whose
            ``bert`` submodule is a ``BertModel``).
        pad_token_id: the id that marks padding in ``input_ids``.
    """

    def __init__(self, model: nn.Module, *, pad_token_id: int = 0) -> None:
        super().__init__()
        self.model = model
        self.pad_token_id = pad_token_id

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Class logits (``N x num_labels``) of a batch of input ids (``N x L``)."""
        mask = (input_ids != self.pad_token_id).long()
        out: torch.Tensor = self.model(input_ids=input_ids, attention_mask=mask).logits
        return out


def tokenize(tokenizer: Any, texts: Sequence[str], *, max_length: int) -> torch.Tensor:
    """``texts`` as an ``N x max_length`` LongTensor of input ids (truncated, then padded)."""
    if not texts:
        return torch.zeros(0, max_length, dtype=torch.long)
    enc = tokenizer(
        list(texts),
        padding="max_length",
        truncation=True,
        max_length=max_length,
        return_tensors="pt",
    )
    ids: torch.Tensor = enc["input_ids"].to(torch.long)
    return ids


def pad_token_id(tokenizer: Any, *, path: Path) -> int:
    """The tokenizer's pad id; a tokenizer without one cannot pad a fixed-length batch."""
    pad = getattr(tokenizer, "pad_token_id", None)
    if pad is None:
        raise TaskError(
            f"the tokenizer in {path} has no pad token: set one (e.g. "
            "`tokenizer.pad_token = tokenizer.eos_token`) and save it again"
        )
    return int(pad)


def transformers_module() -> Any:
    """``transformers``, imported on first use (it is heavy)."""
    try:
        import transformers
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise TaskError(
            f"text tasks need `transformers` ({e}): `pip install 'transformers>=4.44'`"
        ) from e
    return transformers


@contextlib.contextmanager
def _quiet_loading() -> Iterator[None]:
    """No per-weight progress bar from transformers while loading (restored afterwards)."""
    hf_logging = transformers_module().utils.logging
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def load_pretrained(path: Path, *, kind: str) -> tuple[Any, Any]:
    """A model and its tokenizer from a local folder, offline, in float32.

    Args:
        path: a folder written by ``save_pretrained`` (config, weights and tokenizer files).
        kind: ``"encoder"`` (``AutoModel``) or ``"sequence-classification"``
            (``AutoModelForSequenceClassification``).

    Raises:
        TaskError: the folder is missing or incomplete, or transformers cannot load it.
    """
    tf = transformers_module()
    if not (path / "config.json").is_file():
        raise TaskError(
            f"{path} has no config.json: point the task option `path` at a folder written by "
            "`model.save_pretrained(folder)` and `tokenizer.save_pretrained(folder)`"
        )
    auto = tf.AutoModel if kind == "encoder" else tf.AutoModelForSequenceClassification
    with _quiet_loading():
        try:
            tokenizer = tf.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError, TypeError) as e:
            raise TaskError(
                f"cannot load a tokenizer from {path} ({e}): save it next to the model with "
                "`tokenizer.save_pretrained(folder)`"
            ) from e
        try:
            model = auto.from_pretrained(str(path), local_files_only=True, dtype=torch.float32)
        except (OSError, ValueError, TypeError, KeyError) as e:
            raise TaskError(
                f"cannot load the {kind} model from {path} ({type(e).__name__}: {e}): the folder "
                "must hold what `save_pretrained` writes (config.json and model.safetensors)"
            ) from e
    model.eval()
    return model, tokenizer


@torch.no_grad()  # not inference_mode: the embeddings feed a head that is trained
def embed_all(
    model: MeanPoolClassifier, input_ids: torch.Tensor, *, batch_size: int = 128
) -> torch.Tensor:
    """Pooled embeddings of every row of ``input_ids``, in batches."""
    model.eval()
    parts = [
        model.embed(input_ids[start : start + batch_size])
        for start in range(0, input_ids.shape[0], batch_size)
    ]
    return torch.cat(parts) if parts else torch.zeros(0, 0)
