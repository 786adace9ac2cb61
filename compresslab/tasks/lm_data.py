"""The evaluation data of a causal task, from WordNet noun glosses (Debian ``wordnet-base``).

- **Multiple choice** (the task's metric): which word does a definition define, among four?
  The prompt is ``The word for "<definition>" is`` and each choice is a word the model's
  tokenizer writes as a single token after a space, so its log-likelihood is one next-token
  log-probability: one forward pass per question scores all four choices exactly. Each word
  is asked once; the distractors are drawn, seeded, from every single-token word (so the
  questions are not limited by the glosses they consume); the right choice's position is
  seeded. The questions come in a seeded random order (a prefix is a random sample), and a
  confirmation split asks other words.
- **Plain text** for perplexity and calibration: glosses written as ``word: definition.``
  (:func:`gloss_text`), disjoint from each other and from the asked words.

Every selection is seeded and stable (:func:`~compresslab.tasks.data.stable_order`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from compresslab.errors import TaskError
from compresslab.tasks.wordnet import Gloss

#: The multiple-choice prompt; the choice follows it after a space.
CHOICE_TEMPLATE = 'The word for "{definition}" is'

#: Choices per question.
N_CHOICES = 4


@dataclass(frozen=True)
class ChoiceSet:
    """Multiple-choice questions, tokenized.

    Attributes:
        prompts: each question's prompt as token ids.
        choices: ``N x 4`` token ids, one token per choice.
        labels: ``N`` index of the right choice.
        words: the four words of each question (for reports and tests).
        definitions: each question's definition.
    """

    prompts: list[list[int]]
    choices: torch.Tensor
    labels: torch.Tensor
    words: list[list[str]]
    definitions: list[str]

    @property
    def all_words(self) -> set[str]:
        """Every word the questions use (right choices and distractors)."""
        return {w for ws in self.words for w in ws}

    @property
    def answers(self) -> list[str]:
        """The right word of each question (each asked once)."""
        return [ws[int(label)] for ws, label in zip(self.words, self.labels, strict=True)]


@dataclass(frozen=True)
class QuestionSplit:
    """The questions of a causal task: the evaluation pool and the confirmation split.

    The two ask different words (:attr:`asked`); distractors may be any single-token word.
    """

    pool: ChoiceSet
    confirm: ChoiceSet

    @property
    def asked(self) -> set[str]:
        """The right words of every question, pool and confirmation."""
        return set(self.pool.answers) | set(self.confirm.answers)


def _rank(seed: int, salt: str, key: object) -> bytes:
    return hashlib.sha256(f"{seed}:{salt}:{key}".encode()).digest()


def short_definition(definition: str) -> str:
    """The first clause of a definition (up to its first semicolon)."""
    return definition.split(";")[0].strip()


def _leaks(word: str, definition: str) -> bool:
    """Whether a definition gives its word away (the word or its first four letters in it)."""
    text = definition.lower()
    return word in text or word[:4] in text


def tokenize_texts(tokenizer: Any, texts: Sequence[str], *, special: bool) -> list[list[int]]:
    """Token ids of each text (``special``: with the tokenizer's own BOS/EOS conventions)."""
    if not texts:
        return []
    enc = tokenizer(list(texts), add_special_tokens=special)
    return [list(map(int, ids)) for ids in enc["input_ids"]]


def single_token_words(tokenizer: Any, words: Iterable[str]) -> dict[str, int]:
    """The words the tokenizer writes as one token after a space, with that token."""
    words = sorted(set(words))
    ids = tokenize_texts(tokenizer, [f" {w}" for w in words], special=False)
    return {w: t[0] for w, t in zip(words, ids, strict=True) if len(t) == 1}


def multiple_choice(
    glosses: Sequence[Gloss],
    tokenizer: Any,
    *,
    questions: int,
    seed: int,
    max_definition_tokens: int,
    confirm_questions: int = 0,
) -> QuestionSplit:
    """Seeded "which word does this definition define" questions, four single-token choices.

    A gloss qualifies when its word is lowercase, alphabetic, 3 to 12 letters, a single token
    of the tokenizer, not given away by its definition, and its definition's first clause has
    at most ``max_definition_tokens`` tokens. The qualifying words are ranked in a seeded
    order: the first ``questions`` are asked in the pool, in that order (any prefix is a
    random sample, not the shortest questions), and the **last** ``confirm_questions`` in the
    confirmation split (so that growing the pool never changes it). Each word is asked once.
    A question's three distractors are drawn, seeded, from every single-token word of
    ``glosses`` (never its right answer, never twice in a question).

    Raises:
        TaskError: fewer than ``questions + confirm_questions`` glosses qualify.
    """
    candidates = {}
    for g in glosses:
        w = g.word
        definition = short_definition(g.definition)
        if not (w.isalpha() and w.islower() and 3 <= len(w) <= 12) or _leaks(w, definition):
            continue
        if definition and w not in candidates:
            candidates[w] = (g, definition)
    tokens = single_token_words(tokenizer, candidates)
    vocabulary = sorted(
        (w for w in candidates if w in tokens),
        key=lambda w: _rank(seed, "choice", candidates[w][0].offset),
    )
    definition_tokens = tokenize_texts(
        tokenizer, [candidates[w][1] for w in vocabulary], special=False
    )
    usable = [
        w
        for w, ids in zip(vocabulary, definition_tokens, strict=True)
        if len(ids) <= max_definition_tokens
    ]
    need = questions + confirm_questions
    if len(usable) < need or len(vocabulary) < N_CHOICES:
        raise TaskError(
            f"only {len(usable)} WordNet glosses make usable questions for this tokenizer "
            f"(single-token words, definitions of at most {max_definition_tokens} tokens); "
            f"questions + confirm_questions = {need} are needed: lower `questions` or "
            "`confirm_questions`, or raise `max_definition_tokens`"
        )

    def ask(words: list[str]) -> ChoiceSet:
        prompts_text, choice_words, labels, definitions = [], [], [], []
        for w in words:
            g, definition = candidates[w]
            label = _rank(seed, "label", g.offset)[0] % N_CHOICES
            choices = _distractors(vocabulary, answer=w, seed=seed, key=g.offset)
            choices.insert(label, w)
            prompts_text.append(CHOICE_TEMPLATE.format(definition=definition))
            choice_words.append(choices)
            labels.append(label)
            definitions.append(definition)
        return ChoiceSet(
            prompts=tokenize_texts(tokenizer, prompts_text, special=True),
            choices=torch.tensor(
                [[tokens[c] for c in ws] for ws in choice_words], dtype=torch.long
            ).reshape(-1, N_CHOICES),
            labels=torch.tensor(labels, dtype=torch.long),
            words=choice_words,
            definitions=definitions,
        )

    return QuestionSplit(
        pool=ask(usable[:questions]), confirm=ask(usable[len(usable) - confirm_questions :])
    )


def _distractors(vocabulary: Sequence[str], *, answer: str, seed: int, key: object) -> list[str]:
    """``N_CHOICES - 1`` different words of ``vocabulary``, none ``answer``, drawn by SHA-256."""
    picked: list[str] = []
    draw = 0
    while len(picked) < N_CHOICES - 1:
        digest = _rank(seed, f"distractor:{key}", draw)
        draw += 1
        word = vocabulary[int.from_bytes(digest[:8], "big") % len(vocabulary)]
        if word != answer and word not in picked:
            picked.append(word)
    return picked


def pick_glosses(
    glosses: Sequence[Gloss],
    *,
    count: int,
    seed: int,
    salt: str,
    exclude: set[str] | None = None,
) -> list[Gloss]:
    """``count`` glosses in a seeded order, none whose word is in ``exclude``.

    Raises:
        TaskError: fewer glosses are left.
    """
    exclude = exclude or set()
    pool = [g for g in glosses if g.word not in exclude and g.definition]
    if len(pool) < count:
        raise TaskError(f"only {len(pool)} WordNet glosses are left for {count} texts")
    return sorted(pool, key=lambda g: _rank(seed, salt, g.offset))[:count]


def gloss_text(gloss: Gloss) -> str:
    """A gloss as plain text: ``word: definition.``."""
    return f"{gloss.word.replace('_', ' ')}: {gloss.definition}."
