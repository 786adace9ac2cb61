"""What a report adds for a generative task: energy per token and per request, and answers.

In a causal task's study one inference is one generated token (the task's workload generates
a fixed number of tokens for every request). Per request = per token x tokens per request.
The prefill (one forward over the prompts) is measured on its own after each trial's paired
measurement; decode per token = (generation per request - prefill per request) / (tokens - 1),
both from the trial's own windows, their intervals added in quadrature.

The answers a variant gave to a few fixed prompts (stored with its trial) are shown beside
the baseline's: a number says how much energy a variant saves, the answers show what it lost.
Variant labels, prompts and answers are given text (:func:`.text.given`): both renderers
escape them.
"""

from __future__ import annotations

import math

from compresslab.records import Quality, SearchResult, TrialRecord
from compresslab.report.blocks import Block, Heading, Para, TableBlock, fmt_j
from compresslab.report.cells import ratio_cell
from compresslab.report.text import given

#: Columns added to ``trials.csv`` for a generative task, in order.
COLUMNS = [
    "perplexity",
    "perplexity_ci95_low",
    "perplexity_ci95_high",
    "perplexity_ratio",
    "perplexity_ratio_ci95_low",
    "perplexity_ratio_ci95_high",
    "perplexity_ratio_low",
    "perplexity_ratio_high",
    "perplexity_decision",
    "perplexity_texts",
    "new_tokens",
    "j_per_request",
    "ci95_j_per_request",
    "prefill_j_per_request",
    "prefill_ci95_j_per_request",
    "decode_j_per_token",
    "decode_ci95_j_per_token",
    "ms_per_token",
    "tokens_per_s",
]


def figures(r: TrialRecord) -> dict[str, float]:
    """Per-request, prefill, decode and latency figures of a measured generation (or empty)."""
    gen, prefill = r.energy, r.phases.get("prefill")
    if gen is None or prefill is None:
        return {}
    units, requests = float(gen.batch_size), float(prefill.batch_size)
    if not (units > 0 and requests > 0):
        return {}
    n = units / requests  # tokens per request
    own_j, own_ci = gen.energy_j_per_inference, gen.ci95_j_per_inference
    pre_j, pre_ci = prefill.energy_j_per_inference, prefill.ci95_j_per_inference
    latency = gen.latency_s_per_batch
    out = {
        "new_tokens": n,
        "j_per_request": r.energy_j_per_inference * n,
        "ci95_j_per_request": r.ci95_j_per_inference * n,
        "prefill_j_per_request": pre_j,
        "prefill_ci95_j_per_request": pre_ci,
        "decode_j_per_token": math.nan,
        "decode_ci95_j_per_token": math.nan,
        "ms_per_token": latency / n * 1e3,
        "tokens_per_s": units / latency if latency > 0 else math.nan,
    }
    if n > 1:
        out["decode_j_per_token"] = (own_j * n - pre_j) / (n - 1)
        out["decode_ci95_j_per_token"] = math.hypot(own_ci * n, pre_ci) / (n - 1)
    return out


def columns(r: TrialRecord) -> dict[str, object]:
    """The :data:`COLUMNS` of one trial (empty for a trial of a task without them)."""
    q = r.quality
    fig = figures(r)
    if q.empty and not fig:
        return {}
    ppl_ci = q.perplexity_ci95 or (None, None)
    ratio_ci = q.perplexity_ratio_ci95 or (None, None)
    row: dict[str, object] = {
        "perplexity": q.perplexity,
        "perplexity_ci95_low": ppl_ci[0],
        "perplexity_ci95_high": ppl_ci[1],
        "perplexity_ratio": q.perplexity_ratio,
        "perplexity_ratio_ci95_low": ratio_ci[0],
        "perplexity_ratio_ci95_high": ratio_ci[1],
        **_perplexity_claim(r),
    }
    row.update({k: fig.get(k) for k in COLUMNS if k not in row})
    return row


def _perplexity_claim(r: TrialRecord) -> dict[str, object]:
    """The perplexity ratio paired per text with the baseline's, and its decision (or none)."""
    p = r.evaluation.perplexity_vs_baseline if r.evaluation is not None else None
    if p is None:
        return {}
    return {
        "perplexity_ratio_low": p.low,
        "perplexity_ratio_high": p.high,
        "perplexity_decision": p.decision,
        "perplexity_texts": p.texts,
    }


def _pm(value: float, ci: float) -> str:
    if not math.isfinite(value):
        return "-"
    return f"{fmt_j(value)} ± {fmt_j(ci)}" if math.isfinite(ci) else fmt_j(value)


def _ppl_cell(q: Quality) -> str:
    if q.perplexity is None:
        return "-"
    lo, hi = q.perplexity_ci95 or (math.nan, math.nan)
    return f"{q.perplexity:.4g} [{lo:.4g}, {hi:.4g}]"


def _ppl_ratio_cell(r: TrialRecord) -> str:
    ratio = r.quality.perplexity_ratio
    if ratio is None:
        return "-"
    if r.is_baseline:
        return "1x (reference)"
    lo, hi = r.quality.perplexity_ratio_ci95 or (math.nan, math.nan)
    return f"{(ratio - 1) * 100:+.1f}% [{(lo - 1) * 100:+.1f}, {(hi - 1) * 100:+.1f}]"


def _acc_cell(r: TrialRecord) -> str:
    if r.accuracy is None:
        return "-"
    lo, hi = r.accuracy_ci95 or (math.nan, math.nan)
    return f"{r.accuracy:.3f} [{lo:.3f}, {hi:.3f}]"


def _shown(result: SearchResult) -> list[TrialRecord]:
    """The baseline, then every distinct measured variant, cheapest per token first."""
    measured = [r for r in result.measured if not r.is_baseline and figures(r)]
    measured.sort(key=lambda r: r.energy_j_per_inference)
    base = result.baseline
    return ([base] if base is not None and figures(base) else []) + measured


def _energy_table(result: SearchResult) -> TableBlock:
    front = {r.number for r in result.frontier}
    rows = []
    for r in _shown(result):
        fig = figures(r)
        rows.append(
            [
                str(r.number) + (" *" if r.number in front else ""),
                given(r.variant),
                _pm(r.energy_j_per_inference, r.ci95_j_per_inference),
                ratio_cell(r),
                _pm(fig["j_per_request"], fig["ci95_j_per_request"]),
                _pm(fig["prefill_j_per_request"], fig["prefill_ci95_j_per_request"]),
                _pm(fig["decode_j_per_token"], fig["decode_ci95_j_per_token"]),
                f"{fig['ms_per_token']:.1f}",
                _acc_cell(r),
                _ppl_cell(r.quality),
                _ppl_ratio_cell(r),
                r.provenance,
            ]
        )
    return TableBlock(
        [
            "trial",
            "variant",
            "J / generated token (95% CI)",
            "vs baseline per token (paired, 95% CI)",
            "J / request",
            "prefill J / request",
            "decode J / token",
            "ms / token",
            "accuracy [95% CI]",
            "perplexity [95% CI]",
            "perplexity vs baseline [95% CI]",
            "provenance",
        ],
        rows,
        "rlllllllllll",
    )


def _answers(result: SearchResult) -> list[Block]:
    base = result.baseline
    if base is None or not base.answers:
        return []
    shown = [base, *[r for r in result.frontier if not r.is_baseline]]
    blocks: list[Block] = [
        Heading("Sample answers"),
        Para(
            "Greedy answers to fixed prompts (stopped at the end of sequence or the task's "
            "answer length), from the baseline and from each frontier variant, as generated "
            "when the variant was evaluated."
        ),
    ]
    for i, item in enumerate(base.answers):
        rows = []
        for r in shown:
            text = r.answers[i].answer if i < len(r.answers) else "-"
            rows.append([str(r.number), given(r.variant), given(text) if text else "(empty)"])
        blocks += [
            Para(given(item.prompt), strong=f"Prompt {i + 1}:"),
            TableBlock(["trial", "variant", "answer"], rows, "rll"),
        ]
    return blocks


def generation_blocks(result: SearchResult) -> list[Block]:
    """The report's section for a generative task (empty for classifiers)."""
    shown = _shown(result)
    if not shown:
        return []
    base = result.baseline
    fig = figures(shown[0])
    n = int(round(fig["new_tokens"]))
    units = shown[0].energy.batch_size if shown[0].energy is not None else math.nan
    batch = int(round(units / max(fig["new_tokens"], 1)))
    text = (
        f"One inference here is one generated token: each request gets {n} new tokens "
        f"(greedy decoding, the end of sequence held back so every variant generates as "
        f"many), {batch} request(s) per batch at the baseline's settings. Energy per request = "
        f"per token x {n}. The prefill (one forward over the prompts, KV cache filled) was "
        f"measured on its own after each trial's paired measurement; decode per token = "
        f"(own generation per request - prefill per request) / {max(n - 1, 1)}, intervals "
        "added in quadrature. Latency: milliseconds per generated token of one request."
    )
    blocks: list[Block] = [
        Heading("Energy per generated token and per request"),
        Para(text),
    ]
    if base is not None and base.quality.perplexity is not None:
        q = base.quality
        blocks.append(
            Para(
                f"Baseline perplexity {_ppl_cell(q)} on {q.perplexity_tokens} tokens of "
                f"{q.perplexity_texts} held-out texts; a variant's perplexity is compared "
                "with it on the same tokens (the interval of the ratio from the per-text "
                "differences). * marks the frontier."
            )
        )
    blocks.append(_energy_table(result))
    return blocks + _answers(result)
