"""Causal language models as tasks: multiple-choice accuracy, perplexity, energy per token.

A causal task (:class:`CausalLMTask`) is judged on three things:

- **Its metric**, accuracy on multiple-choice questions scored by log-likelihood (which word
  does a WordNet definition define, among four: :mod:`compresslab.tasks.lm_data`), with the
  Wilson interval every metric has. This is objective 1 of the search. The questions come in
  a seeded random order (the search compares on prefixes); a confirmation split of questions
  on other words (``confirm_questions``) is left for :meth:`~CausalLMTask.confirmation`.
- **Perplexity** on held-out WordNet glosses, with a 95% interval (a ratio estimator over the
  texts, Student t), and the variant's perplexity relative to the base model's on the same
  tokens, with an interval from the paired per-text differences. ``search.tolerance.perplexity``
  bounds that ratio (a relative increase). Each text's negative log-likelihood is returned
  too, the variant's and the base model's, for a paired comparison downstream.
- **Energy per generated token**: its workload (:meth:`CausalLMTask.workload`) generates
  ``new_tokens`` tokens greedily for a batch of fixed prompts; the prefill (one forward over
  the prompts) is measured as a phase of its own, so decode = generation - prefill.

The model comes from a local Hugging Face folder (``save_pretrained``) or a GGUF file, which
transformers dequantizes to float32 with the ``gguf`` package (``pip install
'compresslab[llm]'``); transformers refuses ``save_pretrained`` on such a model, so the
converted weights, config and tokenizer are cached under the compresslab cache folder and
loaded from there afterwards. Everything loads offline (``local_files_only``).

Providers: ``causal_lm`` (option ``path``: your own model) here, ``smollm2`` (the bundled
SmolLM2-135M-Instruct) in :mod:`compresslab.tasks.smollm2`. Loading is
:mod:`compresslab.tasks.causal_loading`'s job, the questions, texts and prompts
:mod:`compresslab.tasks.causal_texts`', scoring :mod:`compresslab.tasks.lm_scoring`'s.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from compresslab.errors import TaskError
from compresslab.tasks.base import Task, TaskWorkload
from compresslab.tasks.causal_loading import load_causal_lm
from compresslab.tasks.causal_texts import prompt_ids, wordnet_texts
from compresslab.tasks.data import positive_int, require_path, resolve_options
from compresslab.tasks.generation import (
    PAD,
    CausalLM,
    GenerationRun,
    PrefillRun,
    decode_rows,
    find_causal_lm,
    pad_left,
    trim_left,
)
from compresslab.tasks.lm_scoring import choice_predictions, log_mean_interval, text_nll

log = logging.getLogger(__name__)

TASK_NAME = "causal_lm"

#: The fixed prompts of the generation workload (and, the first ``answer_prompts`` of them,
#: of the answers shown in reports).
GENERATION_PROMPTS: tuple[str, ...] = (
    "What is the capital of France?",
    "Explain in one sentence what a bicycle is.",
    "Name three fruits that are red.",
    "What is photosynthesis?",
    "Why is the sky blue?",
    "Write a short poem about the sea.",
    "How do airplanes stay in the air?",
    "Give me one tip for learning a new language.",
)

#: Every option of the task with its default (see :func:`causal_lm_task`).
DEFAULT_OPTIONS: dict[str, Any] = {
    "path": None,
    "questions": 1000,
    "confirm_questions": 1000,
    "max_definition_tokens": 12,
    "perplexity_texts": 40,
    "calibration_texts": 32,
    "prompts": list(GENERATION_PROMPTS),
    "chat": True,
    "new_tokens": 16,
    "answer_prompts": 3,
    "answer_tokens": 32,
    "seed": 0,
    "wordnet_path": None,
}


# --- the task ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CausalLMTask(Task):
    """A causal language model with multiple-choice questions, text, and prompts.

    ``eval_inputs`` are the questions' prompts (left-padded with
    :data:`~compresslab.tasks.generation.PAD`) in a seeded random order, ``eval_labels`` the
    right choices' indices; ``confirm_inputs``/``confirm_labels``/``confirm_choices`` the
    confirmation split's (questions on other words); ``train_inputs`` are calibration texts
    (for activation-aware pruning).

    Attributes:
        choices: ``N x 4`` token ids of the choices (one token each).
        confirm_choices: the confirmation split's choices (``M x 4``; None without one).
        text: held-out texts for perplexity, left-padded, in a seeded order.
        prompts: the generation workload's prompts, left-padded.
        prompt_texts: the prompts as written (before any chat template).
        answer_prompts: how many of the prompts are answered for reports.
        new_tokens: tokens generated per request in the measured workload.
        answer_tokens: most tokens of an answer shown in reports.
        tokenizer: decodes answers.
    """

    unit: ClassVar[str] = "generated token"
    has_perplexity: ClassVar[bool] = True
    #: Questions scored per forward pass (:func:`.lm_scoring.choice_predictions`).
    eval_batch_size: ClassVar[int] = 32
    #: Perplexity texts scored per forward pass (:func:`.lm_scoring.text_nll`).
    text_batch_size: ClassVar[int] = 8

    choices: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 4, dtype=torch.long))
    confirm_choices: torch.Tensor | None = None
    text: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 0, dtype=torch.long))
    prompts: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 0, dtype=torch.long))
    prompt_texts: tuple[str, ...] = ()
    answer_prompts: int = 3
    new_tokens: int = 16
    answer_tokens: int = 32
    tokenizer: Any = None
    _state: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        """Check that the confirmation split has one row of choices per question.

        Raises:
            TaskError: the confirmation split is incomplete.
        """
        super().__post_init__()
        n = None if self.confirm_inputs is None else int(self.confirm_inputs.shape[0])
        m = None if self.confirm_choices is None else int(self.confirm_choices.shape[0])
        if n != m:
            raise TaskError(
                f"task '{self.name}' has {n or 0} confirmation questions but {m or 0} rows of "
                "confirm_choices: give one row of choices per question"
            )

    def _confirmation_extra(self) -> dict[str, Any]:
        return {"choices": self.confirm_choices, "confirm_choices": None}

    def inference_batch(self, batch_size: int) -> torch.Tensor:
        """``batch_size`` generation prompts (cycled), left-padded to the longest."""
        idx = torch.arange(batch_size) % self.prompts.shape[0]
        return trim_left(self.prompts[idx]).contiguous()

    def predictions(self, model: nn.Module, indices: torch.Tensor | None = None) -> torch.Tensor:
        """The most likely choice of each question (of ``indices`` only, when given)."""
        prompts = self.eval_inputs if indices is None else self.eval_inputs[indices]
        choices = self.choices if indices is None else self.choices[indices]
        return choice_predictions(
            find_causal_lm(model), prompts, choices, batch_size=self.eval_batch_size
        )

    def workload(
        self, model: nn.Module, batch: torch.Tensor, *, kv_cache: bool | None = None
    ) -> TaskWorkload:
        """Greedy generation of ``new_tokens`` per prompt of ``batch``; prefill as a phase.

        The runners hold ``batch`` on ``model``'s device (the bench places the model, then the
        prompts follow it), and their inputs are there too.
        """
        model.eval()
        gen = GenerationRun(
            model, batch, new_tokens=self.new_tokens, kv_cache=kv_cache is not False
        )
        prefill = PrefillRun(model, batch)
        return TaskWorkload(
            gen,
            gen.units(),
            unit="generated token",
            phases={"prefill": TaskWorkload(prefill, prefill.units(), unit="request")},
        )

    def _base_nll(self) -> torch.Tensor:
        if "base_nll" not in self._state:
            self._state["base_nll"] = text_nll(
                find_causal_lm(self.model), self.text, batch_size=self.text_batch_size
            )[0]
        base: torch.Tensor = self._state["base_nll"]
        return base

    def quality(self, model: nn.Module) -> dict[str, Any]:
        """Perplexity with its 95% interval, and relative to the base model's (paired).

        Besides the figures, each perplexity text's outcome, in the order of ``text``:
        ``text_nll`` (its summed negative log-likelihood in nats, under ``model``),
        ``text_tokens`` (its tokens scored) and ``baseline_text_nll`` (the base model's on the
        same tokens), for :meth:`compresslab.records.Outcomes.from_nll` (texts scored
        ``text_batch_size`` at a time).
        """
        nll, tokens = text_nll(find_causal_lm(model), self.text, batch_size=self.text_batch_size)
        base = self._base_nll()
        ppl, low, high = log_mean_interval(nll, tokens)
        ratio, r_low, r_high = log_mean_interval(nll - base, tokens)
        return {
            "perplexity": ppl,
            "perplexity_ci95": [low, high],
            "perplexity_ratio": ratio,
            "perplexity_ratio_ci95": [r_low, r_high],
            "baseline_perplexity": log_mean_interval(base, tokens)[0],
            "perplexity_tokens": int(tokens.sum()),
            "perplexity_texts": int(tokens.numel()),
            "text_nll": [float(v) for v in nll],
            "text_tokens": [int(t) for t in tokens],
            "baseline_text_nll": [float(v) for v in base],
        }

    def answers(self, model: nn.Module) -> list[dict[str, str]]:
        """Greedy answers to the first ``answer_prompts`` prompts, for reports.

        At most ``answer_tokens`` tokens each, stopped at the end-of-sequence token.
        """
        n = min(self.answer_prompts, self.prompts.shape[0])
        if n == 0:
            return []
        with torch.inference_mode():
            ids = (
                find_causal_lm(model)
                .generate_ids(
                    trim_left(self.prompts[:n]), new_tokens=self.answer_tokens, stop_at_eos=True
                )
                .cpu()
            )
        texts = decode_rows(self.tokenizer, ids)
        return [
            {"prompt": p, "answer": a} for p, a in zip(self.prompt_texts[:n], texts, strict=True)
        ]


# --- building ------------------------------------------------------------------------------


def _int_option(cfg: dict[str, Any], name: str) -> int:
    return positive_int(TASK_NAME, name, cfg[name])


def _wrap_model(hf_model: nn.Module, tokenizer: Any) -> CausalLM:
    """The model as a :class:`CausalLM`, padding with the tokenizer's pad (else EOS, else 0)."""
    eos = getattr(tokenizer, "eos_token_id", None)
    pad = getattr(tokenizer, "pad_token_id", None)
    pad = pad if pad is not None else (eos if eos is not None else 0)
    return CausalLM(hf_model, pad_token_id=int(pad), eos_token_id=eos).eval()


def build_causal_task(
    hf_model: nn.Module,
    tokenizer: Any,
    options: dict[str, Any],
    *,
    name: str = TASK_NAME,
    model_label: str = "",
) -> CausalLMTask:
    """A :class:`CausalLMTask` around a loaded model and tokenizer (options as the provider's).

    Raises:
        TaskError: an option is wrong, or WordNet is missing.
    """
    cfg = resolve_options(name, options, DEFAULT_OPTIONS)
    seed = int(cfg["seed"])
    prompts = [str(p) for p in cfg["prompts"] or []]
    if not prompts:
        raise TaskError(f"task '{name}': option `prompts` must list at least one prompt")
    new_tokens = _int_option(cfg, "new_tokens")
    answer_tokens = _int_option(cfg, "answer_tokens")
    answer_n = int(cfg["answer_prompts"])
    if answer_n < 0:
        raise TaskError(f"task '{name}': option `answer_prompts` must be 0 or more")
    texts = wordnet_texts(tokenizer, cfg, seed=seed, task=TASK_NAME)
    mc, confirm, text, train = (
        texts.questions.pool,
        texts.questions.confirm,
        texts.text,
        texts.calibration,
    )
    has_confirm = len(confirm.labels) > 0
    params = sum(p.numel() for p in hf_model.parameters())
    label = model_label or type(hf_model).__name__
    tokens = int((text != PAD).sum()) - int(text.shape[0])
    return CausalLMTask(
        name=name,
        model=_wrap_model(hf_model, tokenizer),
        eval_inputs=pad_left(mc.prompts),
        eval_labels=mc.labels,
        num_classes=4,
        train_inputs=train,
        train_labels=None,
        choices=mc.choices,
        confirm_inputs=pad_left(confirm.prompts) if has_confirm else None,
        confirm_labels=confirm.labels if has_confirm else None,
        confirm_choices=confirm.choices if has_confirm else None,
        text=text,
        prompts=pad_left(prompt_ids(tokenizer, prompts, chat=bool(cfg["chat"]))),
        prompt_texts=tuple(prompts),
        answer_prompts=answer_n,
        new_tokens=new_tokens,
        answer_tokens=answer_tokens,
        tokenizer=tokenizer,
        description=(
            f"{label} ({params / 1e6:.1f}M parameters); metric: accuracy on "
            f"{len(mc.labels)} WordNet questions (which word does a definition define, among 4 "
            f"single-token words; log-likelihood; a confirmation split of "
            f"{len(confirm.labels)} questions on other words); perplexity on {tokens} tokens of "
            f"{len(texts.text_glosses)} held-out WordNet glosses; energy per generated token: "
            f"{len(prompts)} fixed prompts, greedy decoding, {new_tokens} new tokens per request"
        ),
        info={
            "model": label,
            "parameters": str(params),
            "questions": str(len(mc.labels)),
            "confirm_questions": str(len(confirm.labels)),
            "perplexity_texts": str(len(texts.text_glosses)),
            "perplexity_tokens": str(tokens),
            "new_tokens": str(new_tokens),
            "prompts": str(len(prompts)),
            "calibration_texts": str(train.shape[0]),
        },
    )


def causal_lm_task(options: dict[str, Any]) -> CausalLMTask:
    """Build a task from your own causal language model.

    Options:
        path: a folder written by ``save_pretrained`` (model and tokenizer), or a ``.gguf``
            file (dequantized to float32 and cached; needs ``compresslab[llm]``). Required.
        questions: multiple-choice questions of the metric, the evaluation pool, in a
            seeded random order (1000).
        confirm_questions: questions of the confirmation split, on words the pool, the
            perplexity and the calibration texts do not use (1000; 0: none).
        max_definition_tokens: longest definition in a question, in tokens (12).
        perplexity_texts: held-out WordNet glosses perplexity is measured on (40).
        calibration_texts: glosses for activation-aware pruning (32).
        prompts: the generation workload's prompts (eight fixed questions).
        chat: wrap prompts in the tokenizer's chat template when it has one (true).
        new_tokens: tokens generated per request in the measured workload (16).
        answer_prompts: how many prompts are answered for the report (3).
        answer_tokens: most tokens of such an answer (32).
        seed: every selection (0).
        wordnet_path: ``data.noun`` or its folder (default ``/usr/share/wordnet``).

    Raises:
        TaskError: an option is wrong, or the model or the data cannot be loaded.
    """
    cfg = resolve_options(TASK_NAME, options, DEFAULT_OPTIONS)
    if not cfg["path"]:
        raise TaskError(
            "task 'causal_lm' needs the option `path`: a folder written by save_pretrained "
            "(model and tokenizer) or a .gguf file; or use the built-in task `smollm2`"
        )
    path = require_path(cfg["path"], what="the model", package=None, option="path")
    hf_model, tokenizer = load_causal_lm(path)
    task = build_causal_task(hf_model, tokenizer, options, model_label=path.name)
    task.info["model_path"] = str(path)
    return task
