"""One standalone measurement: a model on a batch, a recipe's baseline, or a trial's variant.

:func:`compresslab.measure` returns it whatever it measured (``compresslab measure`` prints it);
:meth:`compresslab.Study.measure` too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from compresslab.records._accuracy import AccuracyVsBaseline
from compresslab.records._codec import to_json
from compresslab.records._energy import EnergyResult, Provenance
from compresslab.records._evaluation import Evaluation
from compresslab.records._trial import Prediction


@dataclass(frozen=True)
class Measurement:
    """One standalone measurement: its energy always, the variant's evaluation for a recipe.

    Attributes:
        energy: the energy per inference (mean, 95% interval, provenance, windows ...); its
            interval is widened by the machine's repeatability between measurements unless
            that was turned off (its ``repeatability_source`` says which).
        selection: how the energy sampler was chosen, in words.
        evaluation: what evaluating a recipe's model produced (the metric, the paired ratio
            to the baseline for a variant, profile, op counts ...); its ``energy`` is
            :attr:`energy`. None for a bare model (nothing but its energy was measured).
        recipe: the recipe's name (None: a bare model).
        variant: the variant's label (``baseline`` for a recipe's uncompressed model; None: a
            bare model, described by nothing but itself).
        trial: the trial whose variant was measured (None: the baseline, or a bare model).
        metric_name: the recipe's metric (``accuracy`` ...), the name of ``evaluation.metric``.
        accuracy_vs_baseline: a variant's metric against the baseline's, paired on the same
            examples and decided against the recipe's tolerance (None: the baseline, or a
            bare model).
        prediction: the trial's prediction, when it was predicted dominated instead of
            measured during the search (compare its ``ratio`` with ``vs_baseline``).
    """

    energy: EnergyResult
    selection: str
    evaluation: Evaluation | None = None
    recipe: str | None = None
    variant: str | None = None
    trial: int | None = None
    metric_name: str | None = None
    prediction: Prediction | None = None
    accuracy_vs_baseline: AccuracyVsBaseline | None = None

    @property
    def energy_j_per_inference(self) -> float:
        """Joules per inference (the mean over the windows)."""
        return self.energy.energy_j_per_inference

    @property
    def ci95_j_per_inference(self) -> float:
        """The 95% half-width of :attr:`energy_j_per_inference`, in joules."""
        return self.energy.ci95_j_per_inference

    @property
    def provenance(self) -> Provenance:
        """How the energy was obtained: measured, integrated, estimated or modeled."""
        return self.energy.provenance

    def to_json(self) -> dict[str, Any]:
        """The ``measure --json`` object: the energy's fields at the top, then the rest.

        The energy result's fields (and ``kwh_per_1k``) lead, then ``variant``, ``trial``,
        ``recipe``; for a recipe's measurement, the metric under its own name, then
        ``selection`` and the evaluation's other figures by name (``accuracy_ci95``,
        ``vs_baseline``, ``reference_energy``, ``n_params`` ...), and ``prediction`` when
        there is one. A bare model's has ``selection`` after ``recipe`` and nothing more.
        """
        out: dict[str, Any] = {
            **self.energy.to_dict(),
            "variant": self.variant,
            "trial": self.trial,
            "recipe": self.recipe,
        }
        ev = self.evaluation
        if ev is None:
            return {**out, "selection": self.selection}
        out |= {
            self.metric_name or "metric": ev.metric,
            "selection": self.selection,
            "accuracy_ci95": list(ev.metric_ci95),
            "reference_energy": ev.reference_energy.to_dict() if ev.reference_energy else None,
            "vs_baseline": to_json(ev.vs_baseline),
            "modeled_j_per_inference": ev.modeled_j_per_inference,
            **to_json(ev.profile),
            "notes": list(ev.notes),
            "op_counts": to_json(ev.op_counts),
            "quality": to_json(ev.quality),
            "answers": to_json(ev.answers),
            "phases": {k: v.to_dict() for k, v in ev.phases.items()},
            "parts": to_json(ev.parts),
        }
        if self.prediction is not None:
            out["prediction"] = to_json(self.prediction)
        if self.accuracy_vs_baseline is not None:
            out["accuracy_vs_baseline"] = to_json(self.accuracy_vs_baseline)
        return out
