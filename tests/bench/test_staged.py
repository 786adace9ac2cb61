"""A variant compared with the baseline on the same examples, in looks: planted differences.

The task's "model" answers each example from a table (its input is the example's index), so a
variant's difference to the baseline is planted exactly: a set of examples it gets wrong where
the baseline is right, and some the other way. Each evaluation seed orders the pool anew (the
looks see other prefixes); the decision at the whole pool is the same for every seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from tests_support import small
from torch import nn

from compresslab.api import load_recipe
from compresslab.bench import VariantBench, baseline_outcomes, looks_of
from compresslab.bench._evaluate import claim_text
from compresslab.bench._staged import compare_in_looks, pool_outcomes
from compresslab.records import Outcomes
from compresslab.report.sections import claim_words
from compresslab.tasks import Task

SEEDS = range(20)


class Table(nn.Module):
    """Answers example ``i`` (its input row is ``[i]``) with ``answers[i]``, as two logits."""

    def __init__(self, answers: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("answers", answers.long())
        self.weight = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        chosen = self.answers[x[:, 0].long()]
        return nn.functional.one_hot(chosen, 2).float() * self.weight


class BatchDependent(Table):
    """Like :class:`Table`, but an example's answer flips when its batch's first index is odd.

    Stands in for a dynamically quantized model, whose answers depend on the other inputs of
    the batch (their common scale).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        chosen = self.answers[x[:, 0].long()]
        if int(x[0, 0]) % 2:
            chosen = 1 - chosen
        return nn.functional.one_hot(chosen, 2).float() * self.weight


def planted(pool: int, *, worse: float, better: float) -> tuple[Table, Table]:
    """The baseline (90% right) and a variant differing on planted examples.

    ``worse``: the share of the pool the variant gets wrong where the baseline is right;
    ``better``: the share it gets right where the baseline is wrong. Its true difference is
    ``better - worse``.
    """
    base = torch.ones(pool, dtype=torch.long)
    base[: pool // 10] = 0  # wrong on the first tenth (every label is 1)
    variant = base.clone()
    variant[pool // 10 : pool // 10 + round(worse * pool)] = 0
    variant[: round(better * pool)] = 1
    return Table(base), Table(variant)


def _bench(tmp_path: Path, model: nn.Module, pool: int, seed: int, **search: Any) -> VariantBench:
    order = torch.randperm(pool, generator=torch.Generator().manual_seed(seed))
    task = Task(
        name="planted",
        model=model,
        eval_inputs=order.unsqueeze(1).float(),
        eval_labels=torch.ones(pool, dtype=torch.long),
        num_classes=2,
    )
    settings = {"trials": 2, "tolerance": {"absolute": 0.01}, "screen_examples": 0, **search}
    return VariantBench(recipe=load_recipe(small(tmp_path, search=settings)), task=task)


def _decisions(tmp_path: Path, pool: int, *, worse: float, better: float) -> list[str]:
    base, variant = planted(pool, worse=worse, better=better)
    out = []
    for seed in SEEDS:
        bench = _bench(tmp_path, base, pool, seed)
        out.append(compare_in_looks(bench, variant)[1].decision)
    return out


def test_a_variant_planted_one_and_a_half_points_worse_is_never_within(tmp_path: Path) -> None:
    for pool in (10_000, 360):
        decisions = _decisions(tmp_path, pool, worse=0.02, better=0.005)
        assert "within" not in decisions, (pool, decisions)
    # The large pool decides it below, or stops early once even the whole pool could not show
    # it within (futile: undecided, never claimed).
    base, variant = planted(10_000, worse=0.02, better=0.005)
    for seed in SEEDS:
        outcomes, claim = compare_in_looks(_bench(tmp_path, base, 10_000, seed), variant)
        assert claim.decision == "below" or (claim.futile and outcomes.n < 10_000), claim


def test_futile_looks_stop_early_and_say_so(tmp_path: Path) -> None:
    # 2 points worse with many discordant examples (14%): never within on 10,000 examples, yet
    # not clearly below on the first looks. The looks stop once the rest of the pool cannot
    # help, and the variant stays undecided.
    base, variant = planted(10_000, worse=0.08, better=0.06)
    outcomes, claim = compare_in_looks(_bench(tmp_path, base, 10_000, 0), variant)
    assert claim.decision == "undecided" and claim.futile and claim.look < claim.looks
    assert outcomes.n == claim.examples < 10_000
    assert "stopped at look" in claim_words(claim) and "not called within" in claim_words(claim)


def test_a_variant_planted_at_no_difference_is_within_on_a_large_pool(tmp_path: Path) -> None:
    decisions = _decisions(tmp_path, 10_000, worse=0.01, better=0.01)
    assert decisions.count("within") >= 19, decisions
    assert "below" not in decisions


def test_a_digits_sized_pool_says_undecided_and_how_many_examples_would_decide(
    tmp_path: Path,
) -> None:
    base, variant = planted(360, worse=0.01, better=0.01)
    bench = _bench(tmp_path, base, 360, 0)
    outcomes, claim = compare_in_looks(bench, variant)
    assert claim.decision == "undecided"
    assert outcomes.n == claim.examples == claim.pool == 360
    assert claim.examples_to_decide is not None and claim.examples_to_decide > 360
    assert claim.looks == 1 and claim.z == pytest.approx(1.96, abs=0.01)
    assert "on the same 360 examples (paired)" in claim_text(claim)


def test_looks_stop_at_the_first_decision_with_the_looks_z(tmp_path: Path) -> None:
    base, variant = planted(10_000, worse=0.2, better=0.0)  # 20 points worse: clear at once
    bench = _bench(tmp_path, base, 10_000, 0, screen_examples=100)
    looks = looks_of(bench)
    assert looks.sizes == (100, 400, 1170, 3420, 10_000)
    assert looks.spending == "pocock" and len(set(looks.z)) > 1
    outcomes, claim = compare_in_looks(bench, variant)
    assert claim.decision == "below" and claim.look == 1 and outcomes.n == 100
    assert claim.z == pytest.approx(looks.z[0]) and claim.looks == 5
    assert "look 1 of 5" in claim_text(claim)


def test_every_model_is_scored_in_the_same_chunks_so_prefixes_pair(tmp_path: Path) -> None:
    # A batch-dependent model: its outcomes on a prefix, scored look by look, are exactly the
    # prefix of its outcomes on the whole pool (the chunks end at the looks).
    answers = torch.ones(3000, dtype=torch.long)
    bench = _bench(tmp_path, Table(answers), 3000, 3, screen_examples=100)
    model = BatchDependent(answers)
    whole = pool_outcomes(bench, model)
    _, claim = compare_in_looks(bench, model)
    assert claim.examples < 3000  # the batch-dependent flips are clearly below: an early stop
    staged = Outcomes.from_correct(
        whole.correct()[: claim.examples],
        batch_size=whole.batch_size,
        examples_id=whole.examples_id,
    )
    assert whole.head(claim.examples) == staged
    # The baseline's outcomes are computed once, on the whole pool, and reused.
    assert baseline_outcomes(bench) is baseline_outcomes(bench)
    assert baseline_outcomes(bench).n == 3000


def test_a_claim_is_confirmed_on_the_untouched_split_and_only_there(tmp_path: Path) -> None:
    from compresslab.bench import confirm_accuracy

    # The pool is examples 0-3999, the confirmation split 4000-7999 (never scored by the
    # looks). The variant is no worse on the pool but 6 points worse on the untouched split:
    # the examples that selected it do not certify it.
    answers = torch.ones(8000, dtype=torch.long)
    answers[:400] = 0
    answers[4000:4400] = 0
    variant = answers.clone()
    variant[4400:4640] = 0
    pool, confirm = torch.arange(4000), torch.arange(4000, 8000)
    task = Task(
        name="planted",
        model=Table(answers),
        eval_inputs=pool.unsqueeze(1).float(),
        eval_labels=torch.ones(4000, dtype=torch.long),
        num_classes=2,
        confirm_inputs=confirm.unsqueeze(1).float(),
        confirm_labels=torch.ones(4000, dtype=torch.long),
    )
    settings = {"trials": 2, "tolerance": {"absolute": 0.01}, "screen_examples": 0}
    bench = VariantBench(recipe=load_recipe(small(tmp_path, search=settings)), task=task)
    _, searched = compare_in_looks(bench, Table(variant))
    assert searched.decision == "within" and searched.delta == 0
    confirmed = confirm_accuracy(bench, Table(variant))
    assert confirmed is not None and confirmed.paired and confirmed.examples == 4000
    assert confirmed.delta == pytest.approx(-0.06) and confirmed.decision == "below"
    # A task without a confirmation split confirms nothing (the report says why).
    plain = _bench(tmp_path, Table(answers[:4000]), 4000, 0)
    assert confirm_accuracy(plain, Table(variant[:4000])) is None
