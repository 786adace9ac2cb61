"""The variant bench: the one place that builds, evaluates and measures a variant.

A variant is a :class:`~compresslab.compress.VariantSpec` (the compression steps) run under a
:class:`Runtime` (threads, batch size, GPU power limit). The search, the notebook API,
``measure``, ``check``, ``export`` and the benchmarks all go through :class:`VariantBench`, so a
variant is built the same way wherever it is asked for (the same context: example inputs,
layers kept whole, seed and training data).

This layer takes plain values (a spec, a runtime) and never an Optuna trial: turning a trial
into a spec stays in :mod:`compresslab.study`.

Where a variant runs is the recipe's ``energy.device``: variants are built on the CPU (methods
whose layers quantize on a device, bitsandbytes, quantize on that one), then
:meth:`VariantBench.place` moves the built model to the device, and the inference batch, the
accuracy evaluation and the profile's forward pass follow it there.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from compresslab.availability import Availability
from compresslab.compress import (
    CompressContext,
    VariantSpec,
    build_variant,
    get_method,
    notes_of,
)
from compresslab.errors import VariantError
from compresslab.protocol.hostlock import host_lock
from compresslab.protocol.timing import PartTimer
from compresslab.recipe import Recipe
from compresslab.records import (
    Answer,
    Evaluation,
    OpCounts,
    PairedRatio,
    Profile,
    Quality,
    Screening,
)

if TYPE_CHECKING:
    import torch
    from torch import nn

    from compresslab.energy import Selection
    from compresslab.protocol import EnergyResult, PairedResult
    from compresslab.tasks import Task, TaskWorkload

log = logging.getLogger(__name__)

#: Runtime knobs a recipe can search (``runtime.<name>``).
RUNTIME_KNOBS = ("threads", "batch_size", "power_limit_w", "kv_cache")


@dataclass(frozen=True)
class Runtime:
    """How a variant is run while it is measured (``None``: the recipe's ``energy`` value)."""

    threads: int | None = None
    batch_size: int | None = None
    power_limit_w: float | None = None
    #: Generative tasks: keep the KV cache while generating (``None``: the task's default, on).
    kv_cache: bool | None = None

    def label(self) -> str:
        """E.g. `` @ threads=1, batch_size=32`` (empty when nothing is set)."""
        parts = [f"{k}={v}" for k, v in dataclasses.asdict(self).items() if v is not None]
        return f" @ {', '.join(parts)}" if parts else ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (stored with a trial; :meth:`from_dict` reads it back)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Runtime:
        """The runtime stored by :meth:`to_dict` (missing keys: the recipe's value)."""
        return cls(**{k: v for k, v in (data or {}).items() if k in RUNTIME_KNOBS})


def knob_availability(name: str) -> Availability:
    """Whether runtime knob ``name`` can be set on this machine, and why (not)."""
    if name == "power_limit_w":
        from compresslab.energy import power_limit_availability

        gpu = power_limit_availability()
        if not gpu:
            return Availability(False, f"needs an NVIDIA GPU: {gpu.reason}")
        return gpu
    if name == "kv_cache":
        return Availability(True, "set in the generation workload of generative tasks")
    return Availability(True, "set through torch")


class Screened(Exception):
    """A variant clearly outside the tolerance (accuracy, or perplexity): not measured for energy.

    ``accuracy`` is what screening saw (None when the perplexity ruled the variant out first).
    """

    def __init__(self, reason: str, *, accuracy: float | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.accuracy = accuracy

    @property
    def screening(self) -> Screening:
        """The record a trial keeps of it."""
        return Screening(self.reason, self.accuracy)


def compress_context(recipe: Recipe, task: Task) -> CompressContext:
    """The context every variant of ``recipe`` is built with (the same everywhere)."""
    return CompressContext(
        example_inputs=task.example_inputs(),
        keep_modules=(*task.keep_layers, *recipe.task.keep_layers),
        seed=recipe.search.seed,
        train_inputs=task.train_inputs,
        train_labels=task.train_labels,
        device=recipe.energy.device,
    )


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
        from compresslab.tasks.metrics import METRICS, wilson_interval

        labels = self.task.eval_labels
        preds = self.task.predictions(model)
        metric = METRICS[self.recipe.task.metric](preds, labels)
        correct = int((preds == labels).sum())
        return metric, wilson_interval(correct, len(labels))

    def screen(self, model: nn.Module, min_accuracy: float) -> None:
        """Raise :class:`Screened` when a subset shows the model clearly below ``min_accuracy``.

        The subset is ``search.screen_examples`` examples drawn with the recipe's seed; the
        upper end of the accuracy's 95% interval on it must reach ``min_accuracy``.
        """
        import torch

        from compresslab.tasks.metrics import wilson_interval

        labels = self.task.eval_labels
        n = min(self.recipe.search.screen_examples, len(labels))
        if n <= 0 or n >= len(labels):
            return
        gen = torch.Generator().manual_seed(self.recipe.search.seed)
        idx = torch.randperm(len(labels), generator=gen)[:n]
        preds = self.task.predictions(model, idx)
        correct = int((preds == labels[idx]).sum())
        _, high = wilson_interval(correct, n)
        if high < min_accuracy:
            raise Screened(
                f"screened out: accuracy {correct / n:.3f} on {n} examples (95% CI up to "
                f"{high:.3f}) is clearly below the minimum {min_accuracy:.4f}; energy not measured",
                accuracy=correct / n,
            )

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
        result = self._measure_work(self.workload(model, batch, runtime), runtime, selection)
        if not standalone:
            return result
        return self.repeatable(result, model=model, inputs=batch, runtime=runtime, variant=variant)

    def workload(self, model: nn.Module, batch: torch.Tensor, runtime: Runtime) -> TaskWorkload:
        """What measuring ``model`` on ``batch`` runs (:meth:`.tasks.Task.workload`).

        ``model`` is the placed variant; the workload's inputs, and the prompts a generative
        task's runner holds, are on the model's device (the task moves them there).
        """
        return self.task.workload(model, batch, kv_cache=runtime.kv_cache)

    def _measure_work(
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

        The steps, in order: build (and place) the variant; its quality (perplexity) and, for
        the search, the quality gate; screening on a subset, then the metric on the whole split
        (a variant below ``min_accuracy`` raises :class:`Screened`); sample answers, profile and
        operation counts; ``gate``; ``before_measure``; the energy measurement (paired with the
        baseline, or the baseline on its own); the workload's phases.

        Returns:
            The :class:`Evaluation`, whose ``parts`` hold the wall and CPU seconds per part of
            :data:`.timing.PARTS` (also in :attr:`last_parts`, also when this raised).
        """
        from compresslab.compress.profile import profile_model
        from compresslab.modeled.costs import modeled_j_per_inference
        from compresslab.modeled.ops import count_ops

        runtime = runtime or Runtime()
        self.last_parts = timer = PartTimer()
        # Building, fine-tuning and evaluating share the host; a measurement excludes them.
        with host_lock(exclusive=False):
            model = self.place(timer.build(self.build, spec))
            screening = min_accuracy is not None and not spec.is_baseline
            quality = Quality.of(self.task.quality(model))
            if quality_gate and not spec.is_baseline:
                self._check_quality(quality)
            if screening:
                assert min_accuracy is not None
                self.screen(model, min_accuracy)
            metric, interval = self.accuracy(model)
            if screening and metric < min_accuracy:  # type: ignore[operator]
                # Feasibility (the frontier, the claims, the best variant) is judged on this
                # figure: a variant below it can never be claimed, so its energy is not spent.
                raise Screened(
                    f"below the tolerance: accuracy {metric:.4f} on the whole split (95% CI "
                    f"{interval[0]:.4f} to {interval[1]:.4f}) is under the minimum "
                    f"{min_accuracy:.4f}, so it cannot be on the feasible frontier; energy not "
                    "measured",
                    accuracy=metric,
                )
            answers = tuple(Answer(**a) for a in self.task.answers(model))
            prof = profile_model(model, self.on_device(self.ctx.example_inputs))
            batch = self.inference_batch(runtime)
            work = self.workload(model, batch, runtime)
            # The deterministic modeled tier, recorded beside the measurement (ranks and gates),
            # per unit of the workload (a classifier's inference, a generated token).
            # The counts themselves are kept too: a study calibrates the modeled tier on them.
            counts = dataclasses.replace(
                count_ops(work.runner, work.inputs), batch_size=int(batch.shape[0])
            )
            modeled = modeled_j_per_inference(counts, batch_size=int(batch.shape[0]))
            # MACs per unit of the workload (a generated token) when it is not the model's own.
            macs = prof.macs_per_inference if work.runner is model else sum(counts.macs.values())
            timer.lap("evaluate")
            is_reference = spec.is_baseline and runtime == Runtime()
            if not is_reference:
                _ = self.reference  # built here, not inside the measurement
                timer.lap("build")
        if gate is not None:
            gate(metric, counts)
        if before_measure is not None:
            before_measure()
        timer.mark()
        if is_reference:
            energy = self.measure(
                model, runtime=runtime, inputs=batch, variant=spec.label(), standalone=standalone
            )
            reference = None
            vs = PairedRatio.itself()
        else:
            # A single span of pairs: its interval is widened by the machine's measured spread
            # of ratios between spans (a standalone one also joins the variant's history).
            paired = self.ratio_repeatable(
                self.measure_paired(model, runtime=runtime),
                runtime=runtime,
                variant=spec.label(),
                record=standalone,
            )
            energy, reference, vs = paired.candidate, paired.reference, paired.vs_reference()
            if standalone:
                energy = self.repeatable(
                    energy, model=model, inputs=batch, runtime=runtime, variant=spec.label()
                )
        phases = {name: self._measure_work(w, runtime) for name, w in work.phases.items()}
        timer.lap("measure")
        return Evaluation(
            metric=metric,
            metric_ci95=interval,
            energy=energy,
            vs_baseline=vs,
            reference_energy=reference,
            modeled_j_per_inference=sum(modeled.values()),
            profile=Profile(
                n_params=prof.params,
                macs_per_inference=macs,
                size_bytes=prof.size_bytes,
                memory_bytes=prof.memory_bytes,
                sparsity=prof.sparsity,
            ),
            op_counts=counts,
            notes=tuple(notes_of(model)),
            quality=quality,
            answers=answers,
            phases=phases,
            parts=timer.times(),
            metric_examples=len(self.task.eval_labels),
        )

    # --- what generative tasks add ----------------------------------------------------------

    def _check_quality(self, quality: Quality) -> None:
        """Raise :class:`Screened` when the perplexity is outside ``search.tolerance``.

        The limit is on the variant's perplexity relative to the baseline's on the same
        tokens (a point estimate, like accuracy's minimum); its interval is recorded.
        """
        limit = self.recipe.search.tolerance.perplexity
        if limit is None:
            return
        ratio = quality.perplexity_ratio
        if ratio is None:
            raise VariantError(
                "search.tolerance.perplexity needs the variant's perplexity ratio, and the task "
                "measured none: remove search.tolerance.perplexity from the recipe"
            )
        if ratio > 1 + limit:
            low, high = quality.perplexity_ratio_ci95 or (ratio, ratio)
            base = quality.baseline_perplexity if quality.baseline_perplexity else math.nan
            raise Screened(
                f"outside the tolerance: perplexity {quality.perplexity or math.nan:.4g} is "
                f"{(ratio - 1) * 100:+.1f}% from the baseline's {base:.4g}"
                f" (95% CI {(low - 1) * 100:+.1f}% to {(high - 1) * 100:+.1f}%), above the "
                f"+{limit * 100:g}% allowed; energy not measured",
                accuracy=None,
            )
