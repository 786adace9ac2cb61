"""Causal language models as tasks: multiple-choice accuracy, perplexity, energy per token.

A causal task (:class:`CausalLMTask`) is judged on three things:

- **Its metric**, accuracy on multiple-choice questions scored by log-likelihood (which word
  does a WordNet definition define, among four: :mod:`compresslab.tasks.lm_data`), with the
  Wilson interval every metric has. This is objective 1 of the search.
- **Perplexity** on held-out WordNet glosses, with a 95% interval (a ratio estimator over the
  texts, Student t), and the variant's perplexity relative to the base model's on the same
  tokens, with an interval from the paired per-text differences. ``search.tolerance.perplexity``
  bounds that ratio (a relative increase).
- **Energy per generated token**: its workload (:meth:`CausalLMTask.workload`) generates
  ``new_tokens`` tokens greedily for a batch of fixed prompts; the prefill (one forward over
  the prompts) is measured as a phase of its own, so decode = generation - prefill.

The model comes from a local Hugging Face folder (``save_pretrained``) or a GGUF file, which
transformers dequantizes to float32 with the ``gguf`` package (``pip install
'compresslab[llm]'``); transformers refuses ``save_pretrained`` on such a model, so the
converted weights, config and tokenizer are cached under the compresslab cache folder and
loaded from there afterwards. Everything loads offline (``local_files_only``).

Providers: ``causal_lm`` (option ``path``: your own model) here, ``smollm2`` (the bundled
SmolLM2-135M-Instruct) in :mod:`compresslab.tasks.smollm2`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from compresslab.errors import TaskError
from compresslab.stats import t95
from compresslab.tasks.base import Task, TaskWorkload
from compresslab.tasks.cache import cache_dir, cache_key
from compresslab.tasks.data import positive_int, require_path, resolve_options
from compresslab.tasks.generation import (
    PAD,
    CausalLM,
    GenerationRun,
    PrefillRun,
    check_finite,
    decode_rows,
    find_causal_lm,
    pad_left,
    trim_left,
)
from compresslab.tasks.lm_data import (
    gloss_text,
    multiple_choice,
    pick_glosses,
    tokenize_texts,
)
from compresslab.tasks.text import _quiet_loading, transformers_module
from compresslab.tasks.wordnet import read_noun_glosses

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
    "questions": 150,
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

_LLM_EXTRA = "pip install 'compresslab[llm]'"
_DONE = "compresslab-converted.json"


# --- statistics ------------------------------------------------------------------------------


def log_mean_interval(values: torch.Tensor, tokens: torch.Tensor) -> tuple[float, float, float]:
    """``exp`` of the per-token mean of ``values`` (summed per text), with its 95% interval.

    A ratio estimator: the mean is ``sum(values) / sum(tokens)``; its standard error comes
    from the per-text residuals ``values - mean * tokens`` (texts are the independent units),
    with a Student t quantile. Returns ``(exp(mean), exp(low), exp(high))``.
    """
    v = values.double()
    t = tokens.double()
    n = int(v.numel())
    mean = float(v.sum() / t.sum())
    if n < 2:
        return math.exp(mean), 0.0, math.inf
    resid = v - mean * t
    se = math.sqrt(float((resid**2).sum()) / (n * (n - 1))) / float(t.mean())
    half = t95(n - 1) * se
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half)


# --- scoring ---------------------------------------------------------------------------------


@torch.inference_mode()
def text_nll(
    lm: CausalLM, texts: torch.Tensor, *, batch_size: int = 8
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed negative log-likelihood of each text's tokens after its first, and their count.

    Raises:
        VariantError: the logits are not finite.
    """
    nll, count = [], []
    for start in range(0, texts.shape[0], batch_size):
        x = trim_left(texts[start : start + batch_size])
        logp = check_finite(lm(x)).log_softmax(dim=-1)[:, :-1]
        x = x.to(logp.device)  # the tokens follow the model (a GPU when placed there)
        target = x[:, 1:]
        valid = (x[:, :-1] != PAD) & (target != PAD)
        picked = logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        nll.append(-(picked.double() * valid).sum(dim=1).cpu())
        count.append(valid.sum(dim=1).cpu())
    return torch.cat(nll), torch.cat(count)


@torch.inference_mode()
def choice_predictions(
    lm: CausalLM, prompts: torch.Tensor, choices: torch.Tensor, *, batch_size: int = 32
) -> torch.Tensor:
    """Index of the most likely choice of each question (one forward pass per question).

    Each choice is one token, so its log-likelihood is the next-token log-probability after
    the prompt. Prompts are batched by length (little padding) and answered in their order.
    """
    lengths = (prompts != PAD).sum(dim=1)
    order = torch.argsort(lengths, stable=True)
    preds = torch.empty(prompts.shape[0], dtype=torch.long)
    for start in range(0, prompts.shape[0], batch_size):
        idx = order[start : start + batch_size]
        logp = check_finite(lm.last_logits(trim_left(prompts[idx]))).log_softmax(dim=-1)
        preds[idx] = logp.gather(1, choices[idx].to(logp.device)).argmax(dim=1).cpu()
    return preds


# --- the task ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CausalLMTask(Task):
    """A causal language model with multiple-choice questions, text, and prompts.

    ``eval_inputs`` are the questions' prompts (left-padded with
    :data:`~compresslab.tasks.generation.PAD`), ``eval_labels`` the right choices' indices;
    ``train_inputs`` are calibration texts (for activation-aware pruning).

    Attributes:
        choices: ``N x 4`` token ids of the choices (one token each).
        text: held-out texts for perplexity, left-padded.
        prompts: the generation workload's prompts, left-padded.
        prompt_texts: the prompts as written (before any chat template).
        answer_prompts: how many of the prompts are answered for reports.
        new_tokens: tokens generated per request in the measured workload.
        answer_tokens: most tokens of an answer shown in reports.
        tokenizer: decodes answers.
    """

    unit: ClassVar[str] = "generated token"
    has_perplexity: ClassVar[bool] = True

    choices: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 4, dtype=torch.long))
    text: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 0, dtype=torch.long))
    prompts: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 0, dtype=torch.long))
    prompt_texts: tuple[str, ...] = ()
    answer_prompts: int = 3
    new_tokens: int = 16
    answer_tokens: int = 32
    tokenizer: Any = None
    _state: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def inference_batch(self, batch_size: int) -> torch.Tensor:
        """``batch_size`` generation prompts (cycled), left-padded to the longest."""
        idx = torch.arange(batch_size) % self.prompts.shape[0]
        return trim_left(self.prompts[idx]).contiguous()

    def predictions(self, model: nn.Module, indices: torch.Tensor | None = None) -> torch.Tensor:
        """The most likely choice of each question (of ``indices`` only, when given)."""
        prompts = self.eval_inputs if indices is None else self.eval_inputs[indices]
        choices = self.choices if indices is None else self.choices[indices]
        return choice_predictions(find_causal_lm(model), prompts, choices)

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
            self._state["base_nll"] = text_nll(find_causal_lm(self.model), self.text)[0]
        base: torch.Tensor = self._state["base_nll"]
        return base

    def quality(self, model: nn.Module) -> dict[str, Any]:
        """Perplexity with its 95% interval, and relative to the base model's (paired)."""
        nll, tokens = text_nll(find_causal_lm(model), self.text)
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


# --- loading -----------------------------------------------------------------------------------


def _require_gguf() -> None:
    import importlib.util

    missing = [m for m in ("gguf", "accelerate") if importlib.util.find_spec(m) is None]
    if missing:
        raise TaskError(
            f"loading a GGUF file needs the packages {' and '.join(missing)}: {_LLM_EXTRA}"
        )


def _unique_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict without repeats of a tied tensor (the first name of each is kept)."""
    seen: set[int] = set()
    out = {}
    for name, value in model.state_dict().items():
        ptr = value.untyped_storage().data_ptr()
        if ptr in seen:
            continue
        seen.add(ptr)
        out[name] = value.detach().contiguous()
    return out


def gguf_folder(file: Path) -> Path:
    """A Hugging Face folder holding the GGUF ``file`` dequantized to float32 (cached).

    transformers refuses ``save_pretrained`` on a GGUF-loaded model, so the weights go to
    ``model.safetensors`` (tied tensors once), the config without its GGUF quantization entry
    to ``config.json``, and the tokenizer beside them; the folder is written whole, then
    renamed into place. Its name changes with the file's path, size and modification time.

    Raises:
        TaskError: ``gguf`` or ``accelerate`` is missing, or transformers cannot read the file.
    """
    from safetensors.torch import save_file

    st = file.stat()
    key = cache_key(
        "causal-lm-gguf-v1",
        {"file": str(file.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns},
    )
    folder = cache_dir() / key
    if (folder / _DONE).is_file():
        return folder
    _require_gguf()
    tf = transformers_module()
    log.info("converting %s to float32 (first use; cached as %s)", file, folder)
    with _quiet_loading():
        try:
            tokenizer = tf.AutoTokenizer.from_pretrained(
                str(file.parent), gguf_file=file.name, local_files_only=True
            )
            model = tf.AutoModelForCausalLM.from_pretrained(
                str(file.parent), gguf_file=file.name, dtype=torch.float32, local_files_only=True
            )
        except (OSError, ValueError, TypeError, KeyError, RuntimeError) as e:
            raise TaskError(
                f"transformers cannot load the GGUF file {file} ({type(e).__name__}: {e}): use a "
                "GGUF of an architecture transformers supports, or a save_pretrained folder"
            ) from e
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=folder.parent))
    try:
        save_file(_unique_state(model), str(staging / "model.safetensors"), {"format": "pt"})
        config = model.config.to_dict()
        config.pop("quantization_config", None)
        (staging / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
        tokenizer.save_pretrained(str(staging))
        source = {"gguf": str(file), "size": st.st_size, "dtype": "float32"}
        (staging / _DONE).write_text(json.dumps(source), encoding="utf-8")
        if not (folder / _DONE).is_file():  # another process may have converted it meanwhile
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def load_causal_lm(path: Path) -> tuple[nn.Module, Any]:
    """A causal LM and its tokenizer from a ``save_pretrained`` folder or a GGUF file (float32).

    Raises:
        TaskError: the folder or file cannot be loaded (the message says what it needs).
    """
    if path.is_file() and path.suffix.lower() == ".gguf":
        path = gguf_folder(path)
    if not (path / "config.json").is_file():
        raise TaskError(
            f"{path} is neither a GGUF file nor a folder with config.json: point `path` at a "
            "folder written by `model.save_pretrained` and `tokenizer.save_pretrained`, or at "
            "a .gguf file"
        )
    tf = transformers_module()
    with _quiet_loading():
        try:
            tokenizer = tf.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            model = tf.AutoModelForCausalLM.from_pretrained(
                str(path), dtype=torch.float32, local_files_only=True
            )
        except (OSError, ValueError, TypeError, KeyError) as e:
            raise TaskError(
                f"cannot load a causal language model from {path} ({type(e).__name__}: {e}): "
                "the folder must hold what save_pretrained writes (config, weights, tokenizer)"
            ) from e
    model.eval()
    return model, tokenizer


def _prompt_ids(tokenizer: Any, prompts: Sequence[str], *, chat: bool) -> list[list[int]]:
    """Prompts as token ids: through the tokenizer's chat template when asked and present."""
    if chat and getattr(tokenizer, "chat_template", None):
        texts = [
            tokenizer.apply_chat_template(
                [{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False
            )
            for p in prompts
        ]
        return tokenize_texts(tokenizer, texts, special=False)
    return tokenize_texts(tokenizer, list(prompts), special=True)


def _int_option(cfg: dict[str, Any], name: str) -> int:
    return positive_int(TASK_NAME, name, cfg[name])


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
    glosses = read_noun_glosses(path=cfg["wordnet_path"])
    mc = multiple_choice(
        glosses,
        tokenizer,
        questions=_int_option(cfg, "questions"),
        seed=seed,
        max_definition_tokens=_int_option(cfg, "max_definition_tokens"),
    )
    used = mc.all_words
    text_glosses = pick_glosses(
        glosses, count=_int_option(cfg, "perplexity_texts"), seed=seed, salt="text", exclude=used
    )
    used |= {g.word for g in text_glosses}
    calib = pick_glosses(
        glosses,
        count=_int_option(cfg, "calibration_texts"),
        seed=seed,
        salt="calibration",
        exclude=used,
    )
    # Sorted by length: batches of similar texts need little padding.
    text = pad_left(
        sorted(
            tokenize_texts(tokenizer, [gloss_text(g) for g in text_glosses], special=True), key=len
        )
    )
    train = pad_left(
        sorted(tokenize_texts(tokenizer, [gloss_text(g) for g in calib], special=True), key=len)
    )
    eos = getattr(tokenizer, "eos_token_id", None)
    pad = getattr(tokenizer, "pad_token_id", None)
    pad = pad if pad is not None else (eos if eos is not None else 0)
    model = CausalLM(hf_model, pad_token_id=int(pad), eos_token_id=eos).eval()
    params = sum(p.numel() for p in hf_model.parameters())
    label = model_label or type(hf_model).__name__
    tokens = int((text != PAD).sum()) - int(text.shape[0])
    return CausalLMTask(
        name=name,
        model=model,
        eval_inputs=pad_left(mc.prompts),
        eval_labels=mc.labels,
        num_classes=4,
        train_inputs=train,
        train_labels=None,
        choices=mc.choices,
        text=text,
        prompts=pad_left(_prompt_ids(tokenizer, prompts, chat=bool(cfg["chat"]))),
        prompt_texts=tuple(prompts),
        answer_prompts=answer_n,
        new_tokens=new_tokens,
        answer_tokens=answer_tokens,
        tokenizer=tokenizer,
        description=(
            f"{label} ({params / 1e6:.1f}M parameters); metric: accuracy on "
            f"{len(mc.labels)} WordNet questions (which word does a definition define, among 4 "
            f"single-token words; log-likelihood); perplexity on {tokens} tokens of "
            f"{len(text_glosses)} held-out WordNet glosses; energy per generated token: "
            f"{len(prompts)} fixed prompts, greedy decoding, {new_tokens} new tokens per request"
        ),
        info={
            "model": label,
            "parameters": str(params),
            "questions": str(len(mc.labels)),
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
        questions: multiple-choice questions of the metric (150).
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
