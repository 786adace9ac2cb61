"""The texts of a causal task: its questions, perplexity and calibration texts, its prompts.

Every text comes from WordNet's noun glosses (:mod:`compresslab.tasks.wordnet`), each gloss
used once: the multiple-choice questions of the metric (an evaluation pool in a seeded random
order and a confirmation split on other words, :func:`~compresslab.tasks.lm_data.multiple_choice`),
then the held-out glosses perplexity is measured on, then the calibration glosses for
activation-aware pruning, none of them the gloss of an asked word. The generation workload's
prompts are tokenized here too (:func:`prompt_ids`), through the tokenizer's chat template when
asked. :mod:`compresslab.tasks.causal_lm` builds its task from them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from compresslab.errors import TaskError
from compresslab.tasks.data import positive_int
from compresslab.tasks.generation import pad_left
from compresslab.tasks.lm_data import (
    QuestionSplit,
    gloss_text,
    multiple_choice,
    pick_glosses,
    tokenize_texts,
)
from compresslab.tasks.wordnet import Gloss, read_noun_glosses


def prompt_ids(tokenizer: Any, prompts: Sequence[str], *, chat: bool) -> list[list[int]]:
    """Prompts as token ids: through the tokenizer's chat template when asked and present.

    Args:
        tokenizer: a Hugging Face tokenizer.
        prompts: the prompts as written.
        chat: wrap each prompt in the tokenizer's chat template (as a user message, with the
            generation prompt) when it has one; else the prompts are tokenized as they are,
            with the tokenizer's special tokens.
    """
    if chat and getattr(tokenizer, "chat_template", None):
        texts = [
            tokenizer.apply_chat_template(
                [{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False
            )
            for p in prompts
        ]
        return tokenize_texts(tokenizer, texts, special=False)
    return tokenize_texts(tokenizer, list(prompts), special=True)


@dataclass(frozen=True)
class CausalTexts:
    """The WordNet texts of a causal task, each gloss used once.

    Attributes:
        questions: the multiple-choice questions of the metric (pool and confirmation).
        text_glosses: the held-out glosses perplexity is measured on.
        text: those glosses' token ids, left-padded, in a seeded order.
        calibration: the calibration glosses' token ids (for activation-aware pruning),
            left-padded, shortest first.
    """

    questions: QuestionSplit
    text_glosses: list[Gloss]
    text: torch.Tensor
    calibration: torch.Tensor


def _confirm_count(cfg: dict[str, Any], *, task: str) -> int:
    """The option ``confirm_questions`` as an ``int`` >= 0, else a :class:`TaskError`."""
    confirm = cfg["confirm_questions"]
    if isinstance(confirm, bool) or not isinstance(confirm, int) or confirm < 0:
        raise TaskError(
            f"task '{task}': option `confirm_questions` must be an integer >= 0 (0: no "
            f"confirmation split), got {confirm!r}"
        )
    return confirm


def wordnet_texts(tokenizer: Any, cfg: dict[str, Any], *, seed: int, task: str) -> CausalTexts:
    """Questions, perplexity texts and calibration texts from WordNet.

    No text is the gloss of an asked word (pool or confirmation), and the perplexity and
    calibration texts share no word.

    Args:
        tokenizer: the model's tokenizer.
        cfg: the task's options, defaults filled in (``wordnet_path``, ``questions``,
            ``confirm_questions``, ``max_definition_tokens``, ``perplexity_texts``,
            ``calibration_texts`` are read).
        seed: every selection.
        task: the task's name, for error messages.

    Raises:
        TaskError: a count option is not a positive integer, or WordNet is missing.
    """
    glosses = read_noun_glosses(path=cfg["wordnet_path"])
    confirm = _confirm_count(cfg, task=task)
    mc = multiple_choice(
        glosses,
        tokenizer,
        questions=positive_int(task, "questions", cfg["questions"]),
        confirm_questions=confirm,
        seed=seed,
        max_definition_tokens=positive_int(
            task, "max_definition_tokens", cfg["max_definition_tokens"]
        ),
    )
    used = mc.asked
    text_glosses = pick_glosses(
        glosses,
        count=positive_int(task, "perplexity_texts", cfg["perplexity_texts"]),
        seed=seed,
        salt="text",
        exclude=used,
    )
    used |= {g.word for g in text_glosses}
    calib = pick_glosses(
        glosses,
        count=positive_int(task, "calibration_texts", cfg["calibration_texts"]),
        seed=seed,
        salt="calibration",
        exclude=used,
    )
    # In the seeded order (text_nll batches them by length); calibration sorted by length.
    text = pad_left(tokenize_texts(tokenizer, [gloss_text(g) for g in text_glosses], special=True))
    train = pad_left(
        sorted(tokenize_texts(tokenizer, [gloss_text(g) for g in calib], special=True), key=len)
    )
    return CausalTexts(questions=mc, text_glosses=text_glosses, text=text, calibration=train)
