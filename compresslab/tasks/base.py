"""What a task provider returns: a trained model, its evaluation data and its metric."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from compresslab.errors import TaskError, VariantError


@dataclass(frozen=True)
class TaskWorkload:
    """What one measured call runs, as a module and its input: ``runner(inputs)``.

    The first dimension of ``inputs`` counts the units one call processes (``unit``: an
    inference of a classifier, a generated token of a language model), so the measurement
    protocol reports energy per unit. A classifier's workload is the model itself on a batch;
    a generative task's runner generates from its own prompts and ignores what ``inputs``
    holds (a zero-width tensor with one row per unit).

    Attributes:
        runner: the module called once per call of the workload.
        inputs: its input; ``inputs.shape[0]`` units per call.
        unit: what one unit is, for reports (``inference``, ``generated token`` ...).
        phases: further workloads measured on their own after the main one (e.g. the
            ``prefill`` of a generation), by name.
    """

    runner: nn.Module
    inputs: torch.Tensor
    unit: str = "inference"
    phases: Mapping[str, TaskWorkload] = field(default_factory=dict)

    @property
    def units_per_call(self) -> int:
        """Units one call processes."""
        return int(self.inputs.shape[0])


@dataclass(frozen=True)
class Task:
    """A model with the data it is judged on.

    Attributes:
        name: short name shown in reports.
        model: the trained base model in eval mode; compression never mutates it.
        eval_inputs: the search's evaluation **pool**, one row per example, never used for
            training. Its order matters: the search compares a variant with the baseline on a
            prefix of the pool first, then on longer prefixes while undecided
            (:func:`compresslab.paired.look_sizes`), so every prefix must be a seeded mix of
            the classes (or questions), not sorted by class, length or difficulty.
        eval_labels: integer class labels for ``eval_inputs``.
        num_classes: number of classes of the classifier.
        train_inputs: training inputs (for recovery fine-tuning), if the provider has them.
        train_labels: labels for ``train_inputs``.
        keep_layers: names of modules that pruning must keep whole (besides the classifier,
            which is found automatically).
        description: one line for the report (model, data, split).
        info: short facts for reports (sizes of the splits ...), by name.
        confirm_inputs: the **confirmation split**, disjoint from the pool and from the
            training data and never seen by the search: after the search, the claimed variants
            are evaluated again on it (:meth:`confirmation`). None when the task has none.
        confirm_labels: integer class labels for ``confirm_inputs``.

    The methods below are what the variant bench asks a task; a classifier keeps their
    defaults (predictions are the argmax of ``model(eval_inputs)``, one inference is one
    example of a batch). A generative task (:class:`~compresslab.tasks.causal_lm.CausalLMTask`)
    overrides them.
    """

    #: What one unit of energy is, for reports (a generative task: ``generated token``).
    unit: ClassVar[str] = "inference"
    #: Whether :meth:`quality` gives a perplexity (``search.tolerance.perplexity`` needs one).
    has_perplexity: ClassVar[bool] = False
    #: The batch the evaluation split is predicted in, fixed for every model of a study: a
    #: dynamically quantized model's answers can change with the other inputs of its batch, so
    #: a per-example comparison needs the same batches on both sides.
    eval_batch_size: ClassVar[int] = 256

    name: str
    model: nn.Module
    eval_inputs: torch.Tensor
    eval_labels: torch.Tensor
    num_classes: int
    train_inputs: torch.Tensor | None = None
    train_labels: torch.Tensor | None = None
    keep_layers: tuple[str, ...] = ()
    description: str = ""
    info: dict[str, str] = field(default_factory=dict)
    confirm_inputs: torch.Tensor | None = None
    confirm_labels: torch.Tensor | None = None

    def __post_init__(self) -> None:
        """Check that a confirmation split comes whole: inputs and labels, one per input.

        Raises:
            TaskError: only one of ``confirm_inputs`` and ``confirm_labels`` is given, or
                their lengths differ.
        """
        if (self.confirm_inputs is None) != (self.confirm_labels is None):
            raise TaskError(
                f"task '{self.name}' sets only one of confirm_inputs and confirm_labels: a "
                "confirmation split needs both (or neither)"
            )
        if (
            self.confirm_inputs is not None
            and self.confirm_labels is not None
            and self.confirm_inputs.shape[0] != self.confirm_labels.shape[0]
        ):
            raise TaskError(
                f"task '{self.name}' has {self.confirm_inputs.shape[0]} confirmation inputs "
                f"but {self.confirm_labels.shape[0]} labels: give one label per input"
            )

    def confirmation(self) -> Task | None:
        """A copy of the task judged on its confirmation split instead of its pool.

        The copy shares the model and the training data; its ``eval_inputs`` and
        ``eval_labels`` are the confirmation split (and it has no confirmation split of its
        own). None when the task has no confirmation split.
        """
        if self.confirm_inputs is None or self.confirm_labels is None:
            return None
        changes: dict[str, Any] = {
            "eval_inputs": self.confirm_inputs,
            "eval_labels": self.confirm_labels,
            "confirm_inputs": None,
            "confirm_labels": None,
            "info": {
                **self.info,
                "eval_split": "confirmation",
                "eval_examples": str(int(self.confirm_labels.shape[0])),
            },
        }
        return dataclasses.replace(self, **changes, **self._confirmation_extra())

    def _confirmation_extra(self) -> dict[str, Any]:
        """Further fields :meth:`confirmation` replaces (a generative task: the choices)."""
        return {}

    def example_inputs(self, batch_size: int = 2) -> torch.Tensor:
        """A small batch of real inputs for tracing and shape checks."""
        return self.eval_inputs[:batch_size]

    def inference_batch(self, batch_size: int) -> torch.Tensor:
        """A batch of ``batch_size`` real evaluation inputs (cycled if the split is smaller)."""
        n = self.eval_inputs.shape[0]
        idx = torch.arange(batch_size) % n
        return self.eval_inputs[idx].contiguous()

    def predictions(self, model: nn.Module, indices: torch.Tensor | None = None) -> torch.Tensor:
        """Predicted class of each evaluation example (of ``indices`` only, when given).

        Raises:
            VariantError: the model's outputs are not finite.
        """
        from compresslab.tasks.metrics import predict

        inputs = self.eval_inputs if indices is None else self.eval_inputs[indices]
        return predict(model, inputs, batch_size=self.eval_batch_size)

    def workload(
        self, model: nn.Module, batch: torch.Tensor, *, kv_cache: bool | None = None
    ) -> TaskWorkload:
        """What measuring ``model``'s energy runs: by default ``model(batch)`` per call.

        The workload's inputs are on ``model``'s device (moved there when they are not).

        Args:
            model: the variant.
            batch: the batch :meth:`inference_batch` made for the measurement.
            kv_cache: the runtime knob ``kv_cache`` (generative tasks only).

        Raises:
            VariantError: ``kv_cache`` is set on a task that does not generate.
        """
        if kv_cache is not None:
            raise VariantError(
                f"runtime.kv_cache applies to generative tasks; task '{self.name}' classifies: "
                "remove runtime.kv_cache from the recipe"
            )
        from compresslab.tasks.metrics import model_device

        device = model_device(model)  # the inputs follow the (placed) model
        return TaskWorkload(model, batch if device is None else batch.to(device))

    def quality(self, model: nn.Module) -> dict[str, Any]:
        """Quality figures besides the metric (a language model: perplexity); none here."""
        return {}

    def answers(self, model: nn.Module) -> list[dict[str, str]]:
        """Sample outputs for the report (a language model: answers to fixed prompts)."""
        return []
