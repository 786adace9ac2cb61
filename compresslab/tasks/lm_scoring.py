"""Scoring a causal language model: text log-likelihood, multiple choice, perplexity intervals."""

from __future__ import annotations

import math

import torch

from compresslab.stats import t95
from compresslab.tasks.generation import PAD, CausalLM, check_finite, trim_left


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


@torch.inference_mode()
def text_nll(
    lm: CausalLM, texts: torch.Tensor, *, batch_size: int = 8
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed negative log-likelihood of each text's tokens after its first, and their count.

    Texts are batched by length (little padding; the same batches for every model given the
    same texts) and the results come back in the order of ``texts``.

    Raises:
        VariantError: the logits are not finite.
    """
    n = texts.shape[0]
    order = torch.argsort((texts != PAD).sum(dim=1), stable=True)
    nll = torch.zeros(n, dtype=torch.float64)
    count = torch.zeros(n, dtype=torch.long)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        x = trim_left(texts[idx])
        logp = check_finite(lm(x)).log_softmax(dim=-1)[:, :-1]
        x = x.to(logp.device)  # the tokens follow the model (a GPU when placed there)
        target = x[:, 1:]
        valid = (x[:, :-1] != PAD) & (target != PAD)
        picked = logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        nll[idx] = -(picked.double() * valid).sum(dim=1).cpu()
        count[idx] = valid.sum(dim=1).cpu()
    return nll, count


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
