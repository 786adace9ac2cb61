"""A recipe's baseline, or one trial's variant, measured on its own (``compresslab measure``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from compresslab.records._codec import to_json
from compresslab.records._evaluation import Evaluation
from compresslab.records._trial import Prediction


@dataclass(frozen=True)
class Measurement:
    """One standalone measurement of a recipe's model or of a trial's variant.

    Attributes:
        recipe: the recipe's name.
        variant: the variant's label (``baseline`` for the uncompressed model).
        trial: the trial whose variant was measured (None: the baseline).
        metric_name: the recipe's metric (``accuracy`` ...).
        evaluation: what the bench produced; its absolute figure is widened by the machine's
            repeatability (a standalone measurement).
        selection: how the energy sampler was chosen, in words.
        prediction: the trial's prediction, when it was predicted dominated instead of
            measured during the search (compare its ``ratio`` with ``vs_baseline``).
    """

    recipe: str
    variant: str
    trial: int | None
    metric_name: str
    evaluation: Evaluation
    selection: str
    prediction: Prediction | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``measure --json`` object: the energy's fields at the top, then the rest.

        The energy result's fields (and ``kwh_per_1k``) lead, then ``variant``, ``trial``,
        ``recipe``, the metric under its own name, ``selection``, the evaluation's other
        figures by name (``accuracy_ci95``, ``vs_baseline``, ``reference_energy``,
        ``n_params`` ...), and ``prediction`` when there is one.
        """
        ev = self.evaluation
        out: dict[str, Any] = {
            **ev.energy.to_dict(),
            "variant": self.variant,
            "trial": self.trial,
            "recipe": self.recipe,
            self.metric_name: ev.metric,
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
        return out
