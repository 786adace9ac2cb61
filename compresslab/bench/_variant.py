"""The variant bench: builds variants of a task's model and measures them (see the package)."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from compresslab.bench._runtime import Runtime, compress_context
from compresslab.compress import (
    VariantSpec,
    build_variant,
    get_method,
)
from compresslab.errors import VariantError
from compresslab.protocol.timing import PartTimer
from compresslab.recipe import Recipe
from compresslab.records import (
    Evaluation,
    OpCounts,
    Outcomes,
)

if TYPE_CHECKING:
    import torch
    from torch import nn

    from compresslab.bench._staged import Looks
    from compresslab.energy import Selection
    from compresslab.protocol import EnergyResult, PairedResult
    from compresslab.tasks import Task, TaskWorkload


log = logging.getLogger(__name__)


class VariantBench:
    """Builds variants of a task's model, then measures their accuracy, cost and energy.

    Args:
        recipe: the validated recipe (task metric, energy protocol, screening, seed).
        task: the loaded task (base model and data).
        selection: the energy sampler (default: the one the recipe's ``energy`` asks for).
        reuse_float: keep the last float model built before the quantize stage and quantize
            copies of it when the next variant has the same pruning and sparsity steps (for
            loops over a grid; building is deterministic, so the variant is the same).
    """

    def __init__(
        self,
        *,
        recipe: Recipe,
        task: Task,
        selection: Selection | None = None,
        reuse_float: bool = False,
    ) -> None:
        from compresslab.protocol import Protocol, select_for

        if recipe.search.tolerance.perplexity is not None and not task.has_perplexity:
            from compresslab.errors import TaskError

            raise TaskError(
                f"search.tolerance.perplexity needs a task with a perplexity (a causal language "
                f"model); task '{task.name}' has none: remove it from the recipe"
            )
        self.recipe = recipe
        self.task = task
        self.selection = selection if selection is not None else select_for(recipe.energy)
        self.ctx = compress_context(recipe, task)
        self.protocol = Protocol.from_spec(recipe.energy)
        #: Where variants run and are measured (``energy.device``): ``cpu``, ``cuda[:N]``.
        self.device: str = recipe.energy.device
        self._reuse_float = reuse_float
        self._float: tuple[str, nn.Module] | None = None
        self._reference: nn.Module | None = None
        #: What identifies the evaluation examples (:func:`._evaluate.examples_id`).
        self.examples_key: str | None = None
        #: The looks of the study's accuracy comparisons (:func:`._staged.looks_of`).
        self.looks: Looks | None = None
        #: The baseline's outcomes on the whole pool (:func:`._staged.baseline_outcomes`).
        self.baseline_pool: Outcomes | None = None
        #: The baseline's outcomes on the confirmation split (:func:`._staged.confirm_accuracy`).
        self.baseline_confirm: Outcomes | None = None
        #: The time of the last :meth:`evaluate` per part, also when it raised (screening).
        self.last_parts = PartTimer()

    # --- building ---------------------------------------------------------------------------

    def build(self, spec: VariantSpec) -> nn.Module:
        """The variant's model, in eval mode (deterministic: the same spec gives the same one).

        Raises:
            VariantError: the variant cannot be built here.
        """
        if not self._reuse_float:
            return build_variant(self.task.model, spec, self.ctx)
        head = VariantSpec(tuple(s for s in spec.steps if get_method(s.method).stage != "quantize"))
        tail = VariantSpec(tuple(s for s in spec.steps if s not in head.steps))
        if self._float is None or self._float[0] != head.label():
            self._float = (head.label(), build_variant(self.task.model, head, self.ctx))
        return build_variant(self._float[1], tail, self.ctx) if tail.steps else self._float[1]

    # --- the device -------------------------------------------------------------------------

    def place(self, model: nn.Module) -> nn.Module:
        """``model`` on the recipe's device (moved in place, as ``nn.Module.to`` does).

        On the CPU nothing moves. The float model kept for ``reuse_float`` is copied first, so
        the next variant is still quantized from a CPU model.

        Raises:
            VariantError: the model holds layers that run on the CPU only (torch's dynamic
                int8), or it cannot be moved.
        """
        if self.device == "cpu":
            return model
        cpu_only = sorted(
            {
                type(m).__name__
                for m in model.modules()
                if type(m).__module__.startswith("torch.ao.nn.quantized")
            }
        )
        if cpu_only:
            raise VariantError(
                f"the variant has {', '.join(cpu_only)} layers, which torch runs on the CPU "
                f"only, and `energy.device` is {self.device}: leave dynamic_int8 out of the "
                "recipe's compression for a GPU (bnb_int8, bnb_4bit, fp16 and bf16 run there)"
            )
        if self._float is not None and model is self._float[1]:
            model = copy.deepcopy(model)
        try:
            return model.to(self.device)
        except (RuntimeError, TypeError, NotImplementedError) as e:
            raise VariantError(
                f"the variant cannot be moved to {self.device} ({type(e).__name__}: {e})"
            ) from e

    def on_device(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` on the recipe's device (a copy there, or itself on the CPU)."""
        return tensor if self.device == "cpu" else tensor.to(self.device)

    def _power_limit_device(self) -> str | None:
        return None if self.device == "cpu" else self.device

    # --- accuracy ---------------------------------------------------------------------------

    def accuracy(self, model: nn.Module) -> tuple[float, tuple[float, float]]:
        """The recipe's metric on the whole held-out split, and the 95% (Wilson) interval.

        The inputs go to ``model``'s device (:meth:`.tasks.Task.predictions`).
        """
        from compresslab.bench._evaluate import scored

        metric, interval, _ = scored(self, model)
        return metric, interval

    # --- energy -----------------------------------------------------------------------------

    def inference_batch(self, runtime: Runtime | None = None) -> torch.Tensor:
        """The batch a variant is measured on, on the recipe's device.

        Its size is the runtime's batch size, else the recipe's ``energy.batch_size``.
        """
        runtime = runtime or Runtime()
        batch = self.task.inference_batch(runtime.batch_size or self.recipe.energy.batch_size)
        return self.on_device(batch)

    def measure(
        self,
        model: nn.Module,
        *,
        runtime: Runtime | None = None,
        inputs: torch.Tensor | None = None,
        selection: Selection | None = None,
        variant: str | None = None,
        standalone: bool = True,
    ) -> EnergyResult:
        """Energy per inference of ``model`` under the recipe's protocol and ``runtime``.

        ``model`` and the batch are moved to the recipe's device first (:meth:`place`); what
        is measured is the task's workload of them (:meth:`workload`).

        A standalone measurement (the default) is widened by this machine's repeatability and
        joins the history of ``variant`` (``spec.label()``; None: the model's own description):
        see :meth:`repeatable`. A study's trial passes ``standalone=False`` (its records widen
        the windows' interval by the study's own spread).

        Raises:
            MeasurementError: the reading is implausible (the message says what to change).
            BackendUnavailableError: a runtime knob (the GPU power limit) cannot be set here.
        """
        runtime = runtime or Runtime()
        model = self.place(model)
        batch = self.on_device(inputs) if inputs is not None else self.inference_batch(runtime)
        result = self.measure_work(self.workload(model, batch, runtime), runtime, selection)
        if not standalone:
            return result
        return self.repeatable(result, model=model, inputs=batch, runtime=runtime, variant=variant)

    def workload(self, model: nn.Module, batch: torch.Tensor, runtime: Runtime) -> TaskWorkload:
        """What measuring ``model`` on ``batch`` runs (:meth:`.tasks.Task.workload`).

        ``model`` is the placed variant; the workload's inputs, and the prompts a generative
        task's runner holds, are on the model's device (the task moves them there).
        """
        return self.task.workload(model, batch, kv_cache=runtime.kv_cache)

    def measure_work(
        self, work: TaskWorkload, runtime: Runtime, selection: Selection | None = None
    ) -> EnergyResult:
        from compresslab.protocol import measure_model

        with contextlib.ExitStack() as stack:
            if runtime.power_limit_w is not None:
                from compresslab.energy import power_limit

                stack.enter_context(
                    power_limit(runtime.power_limit_w, torch_device=self._power_limit_device())
                )
            return measure_model(
                work.runner,
                work.inputs,
                sampler=(selection or self.selection).sampler,
                protocol=self.protocol,
                threads=runtime.threads or self.recipe.energy.threads,
            )

    def repeatable(
        self,
        result: EnergyResult,
        *,
        model: nn.Module,
        inputs: torch.Tensor,
        runtime: Runtime | None = None,
        variant: str | None = None,
    ) -> EnergyResult:
        """A standalone ``result`` widened by this machine's repeatability, and recorded.

        The term is this machine's for the result's sampler tier, learnt from finished studies
        and earlier standalone measurements (:mod:`compresslab.protocol.repeatability`); the
        figure joins the history of its workload (task and energy settings, variant, runtime).
        """
        from compresslab.protocol.repeatability import model_key, standalone, workload_key

        runtime = runtime or Runtime()
        threads = runtime.threads or self.recipe.energy.threads
        if variant is None:
            key, described = model_key(model, inputs, threads)
            label = f"{self.recipe.name}: {described}"
        else:
            label = f"{self.recipe.name}: {variant}{runtime.label()}"
            settings = [self.recipe.task.model_dump_json(), self.recipe.energy.model_dump_json()]
            key = workload_key(*settings, variant, runtime.to_dict(), threads)
        return standalone(result, key=key, label=label)

    def ratio_repeatable(
        self,
        paired: PairedResult,
        *,
        runtime: Runtime | None = None,
        variant: str,
        record: bool = False,
    ) -> PairedResult:
        """A single-span paired ``paired`` widened by this machine's repeatability of ratios.

        The term is this machine's for the candidate's sampler tier, learnt from confirmations
        and earlier standalone paired measurements
        (:mod:`compresslab.protocol.ratio_repeatability`); the pairs' own interval stays in
        ``ratio_pairs``. With ``record`` the ratio joins the history of the variant against
        the baseline (task and energy settings, variant, runtime).
        """
        from compresslab.protocol.ratio_repeatability import single_span
        from compresslab.protocol.repeatability import workload_key

        runtime = runtime or Runtime()
        key = None
        if record:
            threads = runtime.threads or self.recipe.energy.threads
            settings = [self.recipe.task.model_dump_json(), self.recipe.energy.model_dump_json()]
            key = workload_key("paired", *settings, variant, runtime.to_dict(), threads)
        label = f"{self.recipe.name}: {variant}{runtime.label()} vs the baseline"
        return single_span(paired, key=key, label=label)

    @property
    def reference(self) -> nn.Module:
        """The uncompressed baseline, built once, on the recipe's device.

        It is what every variant is measured against.
        """
        if self._reference is None:
            self._reference = self.place(self.build(VariantSpec()))
        return self._reference

    def measure_paired(
        self,
        model: nn.Module,
        *,
        runtime: Runtime | None = None,
        reference: nn.Module | None = None,
        pairs: int | None = None,
    ) -> PairedResult:
        """``model`` measured against the baseline, their windows interleaved (ABBA).

        The baseline runs at the recipe's own settings, the variant at ``runtime``'s; the
        ratio (variant / baseline) and its interval come from the pairs (one span of time:
        :meth:`ratio_repeatable` widens it by the machine's spread between spans).

        Args:
            model: the variant.
            runtime: how the variant runs (threads, batch size, power limit).
            reference: the model to compare with (default: the uncompressed baseline).
            pairs: exactly this many pairs (default: the recipe's ``min_windows`` to
                ``max_windows``, until the ratio's interval is tight).
        """
        from compresslab.protocol import measure_models_paired

        runtime = runtime or Runtime()
        protocol = self.protocol
        if pairs is not None:
            protocol = dataclasses.replace(protocol, min_windows=pairs, max_windows=pairs)
        ref = self.workload(
            self.place(reference) if reference is not None else self.reference,
            self.inference_batch(),
            Runtime(),
        )
        work = self.workload(self.place(model), self.inference_batch(runtime), runtime)
        base = (ref.runner, ref.inputs, self.recipe.energy.threads)
        mine = (work.runner, work.inputs, runtime.threads or self.recipe.energy.threads)
        with contextlib.ExitStack() as stack:
            if runtime.power_limit_w is not None:
                from compresslab.energy import power_limit

                stack.enter_context(
                    power_limit(runtime.power_limit_w, torch_device=self._power_limit_device())
                )
            return measure_models_paired(
                base, mine, sampler=self.selection.sampler, protocol=protocol
            )

    # --- the whole evaluation of one variant ------------------------------------------------

    def evaluate(
        self,
        spec: VariantSpec,
        *,
        min_accuracy: float | None = None,
        runtime: Runtime | None = None,
        before_measure: Callable[[], None] | None = None,
        gate: Callable[[float, OpCounts], None] | None = None,
        quality_gate: bool = False,
        standalone: bool = False,
    ) -> Evaluation:
        """Build the variant, then its metric and figures: the :class:`Evaluation`.

        The steps and their order are :mod:`compresslab.bench._evaluate`'s: assess (build,
        quality, screening, the metric, counts), then ``gate`` and ``before_measure``, then the
        energy.

        With ``min_accuracy``, a variant below it is not measured for energy: clearly below on
        a subset first (the upper end of its accuracy's 95% interval there), then below on the
        whole split (the figure feasibility is judged on): :class:`Screened` is raised instead.
        The baseline is never screened. With ``quality_gate`` (the search), a variant outside
        ``search.tolerance.perplexity`` is not measured either (:class:`Screened`), so every
        measured variant is within both.

        ``standalone`` (``compresslab measure``, not a study's trial) widens the absolute
        figure by this machine's repeatability (:meth:`repeatable`). A variant's ratio to the
        baseline (``vs_baseline``) is widened by this machine's repeatability of paired ratios
        in every case, a study's trial too (:meth:`ratio_repeatable`); a standalone one also
        joins the variant's history of ratios.

        ``gate``, when given, is called before the energy measurement with the metric and the
        operations counted on the variant; it may raise to skip the measurement (the search's
        prediction does: :mod:`compresslab.study.predict`).

        Returns:
            The :class:`Evaluation`, whose ``parts`` hold the wall and CPU seconds per part of
            :data:`compresslab.protocol.timing.PARTS` (also in :attr:`last_parts`, also when
            this raised).
        """
        from compresslab.bench._evaluate import assess, measure_energy

        runtime = runtime or Runtime()
        self.last_parts = timer = PartTimer()
        assessed = assess(
            self, spec, runtime, timer, min_accuracy=min_accuracy, quality_gate=quality_gate
        )
        if gate is not None:
            gate(assessed.metric, assessed.counts)
        if before_measure is not None:
            before_measure()
        return measure_energy(self, spec, runtime, timer, assessed, standalone=standalone)
