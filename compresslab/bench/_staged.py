"""Accuracy on the evaluation pool, compared with the baseline's on the same examples, in looks.

Every model of a study is scored on the task's evaluation pool (``Task.eval_inputs``) in the
same chunks, so that a dynamically quantized model, whose answers depend on the other inputs
of its batch, sees the same batches as the baseline: the chunks end at the looks' sizes
(:func:`compresslab.looks.look_sizes`), and each chunk is predicted in the task's fixed
evaluation batch (``Task.eval_batch_size``) from its own start.

The search compares a variant in looks (:func:`compare_in_looks`): on the first look's
examples, then, while the decision against the tolerance is ``undecided``, on the next look's
(more examples of the pool), with each look's z from the recipe's alpha-spending rule
(``search.evaluation.spending``): the decision is wrong at most 5% of the time over all the
looks together. The baseline's outcomes on the whole pool are computed once per bench
(:func:`baseline_outcomes`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from compresslab import paired
from compresslab.looks import alpha_spending, futile, look_sizes
from compresslab.records import AccuracyVsBaseline, Outcomes, accuracy_vs_baseline

if TYPE_CHECKING:
    from torch import nn

    from compresslab.bench._variant import VariantBench
    from compresslab.tasks import Task


@dataclass(frozen=True)
class Looks:
    """The looks of a study's comparisons: the examples seen at each, and each one's z.

    Attributes:
        sizes: the examples seen at each look (increasing; the last is the whole pool).
        z: each look's normal quantile (1.96 for a single look).
        spending: the alpha-spending rule (empty for a single look).
        pool: the examples of the pool.
    """

    sizes: tuple[int, ...]
    z: tuple[float, ...]
    spending: str
    pool: int


def looks_of(bench: VariantBench) -> Looks:
    """The looks of ``bench``'s recipe over its task's pool (``search.evaluation``).

    The screening look (``search.screen_examples``, when below the first look) is the first.
    """
    if bench.looks is None:
        spec = bench.recipe.search.evaluation
        pool = int(bench.task.eval_labels.shape[0])
        sizes = look_sizes(
            pool,
            first=spec.first_examples,
            looks=spec.looks,
            screen=bench.recipe.search.screen_examples,
        )
        single = len(sizes) == 1
        z = [paired.Z95] if single else alpha_spending(
            [s / pool for s in sizes], spending=spec.spending
        )  # fmt: skip
        bench.looks = Looks(tuple(sizes), tuple(z), "" if single else spec.spending, pool)
    return bench.looks


def correct_on(bench: VariantBench, model: nn.Module, start: int, stop: int) -> list[bool]:
    """Right or wrong on pool examples ``start`` to ``stop``, in the study's chunks.

    ``start`` and ``stop`` are look boundaries (or 0 and the pool's end): each chunk between
    two looks is predicted from its own start in the task's evaluation batch.
    """
    import torch

    labels = bench.task.eval_labels
    bounds = [0, *looks_of(bench).sizes]
    right: list[bool] = []
    for a, b in zip(bounds, bounds[1:], strict=False):
        if b <= start or a >= stop:
            continue
        if a < start or b > stop:
            raise ValueError(f"examples {start}-{stop} do not end at the looks {bounds}")
        idx = torch.arange(a, b)
        preds = bench.task.predictions(model, idx)
        right += (preds == labels[idx]).tolist()
    return right


def pool_outcomes(bench: VariantBench, model: nn.Module) -> Outcomes:
    """``model``'s right or wrong on every example of the pool, in the study's chunks."""
    return Outcomes.from_correct(
        correct_on(bench, model, 0, looks_of(bench).pool),
        batch_size=bench.task.eval_batch_size,
        examples_id=examples_id(bench),
    )


def baseline_outcomes(bench: VariantBench) -> Outcomes:
    """The baseline's outcomes on the whole pool (computed once per bench)."""
    if bench.baseline_pool is None:
        bench.baseline_pool = pool_outcomes(bench, bench.reference)
    return bench.baseline_pool


def tolerance_of(bench: VariantBench, baseline: Outcomes) -> float:
    """The accuracy drop the recipe allows, from the baseline's accuracy on the pool."""
    base = baseline.successes / baseline.n
    return base - bench.recipe.search.tolerance.min_accuracy(base)


def compare_in_looks(
    bench: VariantBench, model: nn.Module, *, min_accuracy: float | None = None
) -> tuple[Outcomes, AccuracyVsBaseline]:
    """``model`` against the baseline on the same examples, adding examples while undecided.

    The tolerance is the baseline's accuracy on the pool minus ``min_accuracy`` (default: the
    recipe's ``search.tolerance``). Returns the outcomes on the examples seen (a prefix of the
    pool) and the comparison of the look that stopped: the first decided one, or the first
    from which even the whole pool could not show it within (``futile``: it stays
    ``undecided``; :func:`compresslab.looks.futile`), else the last (``undecided`` on the
    whole pool).
    """
    looks = looks_of(bench)
    base = baseline_outcomes(bench)
    tolerance = max(
        0.0,
        tolerance_of(bench, base)
        if min_accuracy is None
        else base.successes / base.n - min_accuracy,
    )
    right: list[bool] = []
    outcomes, claim = None, None
    for k, (size, z) in enumerate(zip(looks.sizes, looks.z, strict=True)):
        right += correct_on(bench, model, len(right), size)
        outcomes = Outcomes.from_correct(
            right, batch_size=bench.task.eval_batch_size, examples_id=examples_id(bench)
        )
        claim = dataclasses.replace(
            accuracy_vs_baseline(outcomes, base.head(size), tolerance=tolerance, z=z),
            look=k + 1,
            looks=len(looks.sizes),
            pool=looks.pool,
            spending=looks.spending,
        )
        if claim.decision != "undecided":
            break
        if k + 1 < len(looks.sizes) and futile(
            delta=claim.delta, low=claim.low, high=claim.high, z=z, seen=size,
            pool=looks.pool, z_last=looks.z[-1], tolerance=tolerance,
        ):  # fmt: skip
            claim = dataclasses.replace(claim, futile=True)
            break
    assert outcomes is not None and claim is not None  # at least one look
    return outcomes, claim


def examples_id(bench: VariantBench) -> str:
    """What identifies the evaluation examples and their chunks: task, options, labels, looks.

    Outcomes with the same identity pair (a prefix of one with the other's); outcomes from
    another pool, or scored in other chunks, never do.
    """
    if bench.examples_key is None:
        import hashlib

        digest = hashlib.sha256(bench.recipe.task.model_dump_json().encode())
        digest.update(bench.task.eval_labels.cpu().numpy().tobytes())
        digest.update(repr(looks_of(bench).sizes).encode())
        bench.examples_key = digest.hexdigest()[:16]
    return bench.examples_key


#: Why a claim's accuracy is not confirmed when the task keeps no untouched split.
NO_CONFIRMATION_SPLIT = (
    "not confirmed: the task has no untouched confirmation split (its evaluation examples are "
    "all the search had)"
)


def split_outcomes(task: Task, model: nn.Module, *, examples_id: str) -> Outcomes:
    """Right or wrong on every example of ``task``'s evaluation split, in one chunk."""
    preds = task.predictions(model)
    return Outcomes.from_correct(
        (preds == task.eval_labels).tolist(),
        batch_size=task.eval_batch_size,
        examples_id=examples_id,
    )


def confirm_accuracy(bench: VariantBench, model: nn.Module) -> AccuracyVsBaseline | None:
    """``model`` against the baseline on the task's untouched confirmation split (one look).

    The tolerance comes from the baseline's accuracy on that split. None when the task keeps
    no such split (:meth:`compresslab.tasks.Task.confirmation`).
    """
    split = bench.task.confirmation()
    if split is None:
        return None
    key = f"confirm:{examples_id(bench)}"
    if bench.baseline_confirm is None:
        bench.baseline_confirm = split_outcomes(split, bench.reference, examples_id=key)
    base = bench.baseline_confirm
    tolerance = tolerance_of(bench, base)
    claim = accuracy_vs_baseline(
        split_outcomes(split, model, examples_id=key), base, tolerance=tolerance
    )
    return dataclasses.replace(claim, pool=base.n)
