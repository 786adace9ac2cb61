"""The gate's candidate: the model as today's code builds it, with its accuracy and modeled figure.

torch and the bench are imported inside the functions: ``import compresslab.check`` (for
``compresslab requirements`` and reading baselines) stays light.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from compresslab.check.accuracy import Scored
from compresslab.check.baseline import GateInputError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from compresslab.bench import Runtime, VariantBench
    from compresslab.check.program import Captured
    from compresslab.compress import VariantSpec
    from compresslab.recipe import Recipe
    from compresslab.records import Outcomes


@dataclass
class Candidate:
    """The model under test, built from today's code, with its accuracy and modeled figure.

    ``outcomes`` are its right/wrong per held-out example (:func:`compresslab.bench.scored`):
    the accuracy check pairs them with the reference's.
    """

    bench: VariantBench
    spec: VariantSpec
    runtime: Runtime
    model: nn.Module
    batch: torch.Tensor
    accuracy: float
    modeled_j_per_inference: float
    outcomes: Outcomes

    @property
    def scored(self) -> Scored:
        """Its accuracy and outcomes, as the accuracy check takes them."""
        return Scored(self.accuracy, self.outcomes, source="the candidate evaluated now")


def _refuse_generation(recipe: Recipe, unit: str) -> None:
    if unit != "inference":
        raise GateInputError(
            f"`compresslab check` gates one forward pass of a classifier's batch, and task "
            f"'{recipe.task.name}' is measured per {unit}: its generation cannot be "
            "captured as one program, so the gate would measure the wrong work. Compare "
            "energy per generated token with `compresslab measure` on both revisions, or "
            "`benchmarks/llm.py` (paired), until the gate measures generation"
        )


def build_candidate(
    recipe: Recipe, *, trial: int | None, storage: str | None, base_dir: Path | None
) -> Candidate:
    """Build the recipe's model (or ``trial``'s variant), and evaluate and count it.

    Raises:
        GateInputError: the task is generative (measured per token, not per inference).
    """
    from compresslab.bench import Runtime, VariantBench, scored
    from compresslab.compress import VariantSpec
    from compresslab.modeled.costs import modeled_j_per_inference
    from compresslab.modeled.ops import count_ops
    from compresslab.protocol.hostlock import host_lock
    from compresslab.tasks import load_task

    spec, runtime = VariantSpec(), Runtime()
    if trial is not None:
        from compresslab.study import trial_variant

        spec, runtime = trial_variant(recipe, trial, storage=storage, base_dir=base_dir)
    task = load_task(recipe.task)
    _refuse_generation(recipe, task.unit)
    bench = VariantBench(recipe=recipe, task=task)
    # Building and evaluating share the host; a measurement excludes them (as in the bench).
    with host_lock(exclusive=False):
        model = bench.build(spec)
        accuracy, _, outcomes = scored(bench, model)
        batch = bench.inference_batch(runtime)
        modeled = modeled_j_per_inference(count_ops(model, batch), batch_size=int(batch.shape[0]))
    return Candidate(bench, spec, runtime, model, batch, accuracy, sum(modeled.values()), outcomes)


def capture(model: nn.Module, batch: torch.Tensor, kinds: tuple[str, ...]) -> Captured:
    """The model's computation as a program of one of ``kinds`` (``export``, ``jit``).

    Raises:
        GateInputError: no kind captures the model (says what to gate against instead).
    """
    from compresslab.check import program

    try:
        return program.capture(model, batch, kinds=kinds)
    except RuntimeError as e:
        raise GateInputError(
            f"the model cannot be captured as a program ({e}). The gate compares programs so "
            "that an earlier commit's computation can be measured without its code; for a "
            "model that neither torch.export nor torch.jit.trace can capture, gate it against "
            "an exported variant instead (`compresslab export`, then `check --reference DIR`: "
            "both sides run eagerly with this code)"
        ) from e
