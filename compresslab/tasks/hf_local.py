"""Bring your own Hugging Face model: a sequence classifier saved in a local folder.

The folder is what ``model.save_pretrained(folder)`` and ``tokenizer.save_pretrained(folder)``
write; it is loaded offline (``local_files_only``) in float32 and wrapped as
:class:`~compresslab.tasks.text.SequenceClassifier` (``forward(input_ids) -> logits``).

The evaluation texts come from a file (``.csv``, ``.tsv`` or ``.jsonl`` with a text and a
label column) or from WordNet noun definitions (``data: wordnet``, labelled by category). A
label is an integer class index or a name in the model's ``config.label2id``.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from compresslab.errors import TaskError
from compresslab.tasks.base import Task
from compresslab.tasks.data import positive_int, require_path, resolve_options, stratified_subset
from compresslab.tasks.text import SequenceClassifier, load_pretrained, pad_token_id, tokenize
from compresslab.tasks.wordnet import DEFAULT_CATEGORIES, category_names, wordnet_split

log = logging.getLogger(__name__)

TASK_NAME = "hf_local"

#: Every option of the task with its default (see the provider function's docstring).
DEFAULT_OPTIONS: dict[str, Any] = {
    "path": None,
    "data": "wordnet",
    "text_column": "text",
    "label_column": "label",
    "max_length": 64,
    "limit": None,
    "train_fraction": 0.0,
    "seed": 0,
    "categories": list(DEFAULT_CATEGORIES),
    "per_class": 50,
    "wordnet_path": None,
}


def read_text_file(
    path: Path, *, text_column: str = "text", label_column: str = "label"
) -> tuple[list[str], list[Any]]:
    """Texts and raw labels from a ``.csv``, ``.tsv`` or ``.jsonl`` file.

    Raises:
        TaskError: the format is unknown, a column is missing, or the file is empty.
    """
    suffix = path.suffix.lower()
    rows: list[dict[str, Any]] = []
    try:
        with path.open(encoding="utf-8", newline="") as f:
            if suffix in (".csv", ".tsv"):
                rows = list(csv.DictReader(f, delimiter="," if suffix == ".csv" else "\t"))
            elif suffix == ".jsonl":
                for n, line in enumerate(f, start=1):
                    if line.strip():
                        row = json.loads(line)
                        if not isinstance(row, dict):
                            raise TaskError(f"{path}:{n}: each line must be a JSON object")
                        rows.append(row)
            else:
                raise TaskError(
                    f"unknown data format '{suffix}' of {path}: use .csv, .tsv or .jsonl with "
                    f"columns `{text_column}` and `{label_column}`, or `data: wordnet`"
                )
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, csv.Error) as e:
        raise TaskError(f"cannot read {path} ({e}): save it as UTF-8 {suffix} text") from e
    if not rows:
        raise TaskError(f"{path} holds no examples")
    for column in (text_column, label_column):
        if column not in rows[0]:
            raise TaskError(
                f"{path} has no column `{column}` (it has {', '.join(map(str, rows[0]))}): "
                "rename it, or set the task options `text_column` / `label_column`"
            )
    return [str(r[text_column]) for r in rows], [r[label_column] for r in rows]


def label_ids(raw: Sequence[Any], *, label2id: dict[str, int], num_labels: int) -> list[int]:
    """Raw labels as class indices: integers (also as text) or names in ``label2id``.

    Raises:
        TaskError: a label is neither a valid index nor a known name.
    """
    out = []
    for value in raw:
        text = str(value).strip()
        if text in label2id:
            idx = int(label2id[text])
        elif text.lstrip("-").isdigit():
            idx = int(text)
        else:
            raise TaskError(
                f"label {value!r} is neither a class index nor one of the model's label names "
                f"({', '.join(label2id)}): fix the data or the model's config.label2id"
            )
        if not 0 <= idx < num_labels:
            raise TaskError(f"label {value!r} is outside the model's {num_labels} classes")
        out.append(idx)
    return out


def _wordnet_examples(cfg: dict[str, Any], config: Any) -> tuple[list[str], list[int]]:
    """WordNet definitions labelled by the model's label names, else by the category order."""
    classes = category_names(cfg["categories"])
    split = wordnet_split(
        categories=classes,
        train_per_class=0,
        test_per_class=positive_int(TASK_NAME, "per_class", cfg["per_class"]),
        seed=int(cfg["seed"]),
        path=cfg["wordnet_path"],
    )
    label2id = {str(k).removeprefix("noun."): int(v) for k, v in config.label2id.items()}
    if all(c in label2id for c in classes):
        mapping = [label2id[c] for c in classes]
    elif len(classes) == config.num_labels:
        mapping = list(range(len(classes)))
    else:
        raise TaskError(
            f"the model has {config.num_labels} labels ({', '.join(label2id)}) but the task "
            f"lists {len(classes)} WordNet categories: list as many (label i = category i), or "
            "name the model's labels after the categories in config.label2id"
        )
    return split.test_texts, [mapping[y] for y in split.test_labels]


def _train_fraction(cfg: dict[str, Any]) -> float:
    """The option ``train_fraction``, checked to lie in [0, 1).

    Raises:
        TaskError: it is not a number in that range.
    """
    fraction = cfg["train_fraction"]
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 <= fraction < 1:
        raise TaskError(f"option `train_fraction` must be in [0, 1), got {fraction!r}")
    return fraction


def _examples(cfg: dict[str, Any], config: Any) -> tuple[list[str], list[int], str]:
    """The texts, their class indices and where they come from (``data``: WordNet or a file).

    Raises:
        TaskError: the data cannot be read, or its labels do not fit the model's classes.
    """
    if str(cfg["data"]) == "wordnet":
        texts, labels = _wordnet_examples(cfg, config)
        source = f"WordNet noun definitions ({', '.join(category_names(cfg['categories']))})"
        return texts, labels, source
    data_path = require_path(cfg["data"], what="the data file", package=None, option="data")
    texts, raw = read_text_file(
        data_path, text_column=cfg["text_column"], label_column=cfg["label_column"]
    )
    labels = label_ids(raw, label2id=dict(config.label2id), num_labels=int(config.num_labels))
    return texts, labels, data_path.name


def _split(
    x: torch.Tensor, y: torch.Tensor, cfg: dict[str, Any], *, fraction: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """``(x_eval, y_eval, x_train, y_train)``: a stratified training share, then ``limit``.

    Raises:
        TaskError: ``limit`` is not a positive integer, or no evaluation example is left.
    """
    seed = int(cfg["seed"])
    x_tr: torch.Tensor | None = None
    y_tr: torch.Tensor | None = None
    if fraction > 0:
        train_idx = stratified_subset(y, round(fraction * len(y)), seed=seed, salt="train")
        rest = torch.ones(len(y), dtype=torch.bool)
        rest[train_idx] = False
        x_tr, y_tr = x[train_idx], y[train_idx]
        x, y = x[rest], y[rest]
    if cfg["limit"] is not None:
        limit = positive_int(TASK_NAME, "limit", cfg["limit"])
        keep = stratified_subset(y, limit, seed=seed, salt="eval")
        x, y = x[keep], y[keep]
    if len(y) == 0:
        raise TaskError("no evaluation examples are left: lower `train_fraction` or raise `limit`")
    return x, y, x_tr, y_tr


def hf_local_task(options: dict[str, Any]) -> Task:
    """Build a task from a local Hugging Face sequence-classification model.

    Options:
        path: the model folder (required), written by ``save_pretrained`` with its tokenizer.
        data: ``wordnet`` (default) or a ``.csv``/``.tsv``/``.jsonl`` file of texts and labels.
        text_column: the file's text column (``text``).
        label_column: the file's label column (``label``): class indices or label names.
        max_length: tokens per input (64).
        limit: evaluate on at most this many examples, a stratified seeded subset (null: all).
        train_fraction: share of the examples kept for training (recovery fine-tuning after
            pruning), stratified; the rest is evaluated (0.0: all evaluated).
        seed: the subsets (0).
        categories: WordNet categories, for ``data: wordnet``; label i is category i unless
            the model's ``label2id`` names the categories.
        per_class: WordNet definitions per category, for ``data: wordnet`` (50).
        wordnet_path: ``data.noun`` or its folder (default ``/usr/share/wordnet``).

    Raises:
        TaskError: an option is wrong, or the model or the data cannot be loaded.
    """
    cfg = resolve_options(TASK_NAME, options, DEFAULT_OPTIONS)
    if not cfg["path"]:
        raise TaskError(
            "task 'hf_local' needs the option `path`: the folder of a model saved with "
            "`save_pretrained` (and its tokenizer)"
        )
    folder = require_path(cfg["path"], what="the model folder", package=None, option="path")
    max_length = positive_int(TASK_NAME, "max_length", cfg["max_length"])
    fraction = _train_fraction(cfg)
    hf_model, tokenizer = load_pretrained(folder, kind="sequence-classification")
    num_labels = int(hf_model.config.num_labels)
    texts, labels, source = _examples(cfg, hf_model.config)
    pad = pad_token_id(tokenizer, path=folder)
    x = tokenize(tokenizer, texts, max_length=max_length)
    x, y, x_tr, y_tr = _split(x, torch.tensor(labels, dtype=torch.long), cfg, fraction=fraction)
    model = SequenceClassifier(hf_model, pad_token_id=pad)
    model.eval()
    return Task(
        name=TASK_NAME,
        model=model,
        eval_inputs=x,
        eval_labels=y,
        num_classes=num_labels,
        train_inputs=x_tr,
        train_labels=y_tr,
        description=(
            f"{type(hf_model).__name__} from {folder} on {len(y)} examples of {source}, "
            f"max_length {max_length}"
        ),
        info={
            "model_path": str(folder),
            "architecture": type(hf_model).__name__,
            "eval_examples": str(len(y)),
            "train_examples": str(0 if y_tr is None else len(y_tr)),
            "max_length": str(max_length),
            "pad_token_id": str(pad),
        },
    )
