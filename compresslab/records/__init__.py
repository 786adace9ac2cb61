"""The typed record spine: what the bench produces, the study stores and the report reads.

- :class:`EnergyResult` (with :class:`Provenance` and :class:`Contention`): one measurement.
- :class:`Evaluation`: everything evaluating one variant produced (metric, energy, the paired
  ratio to the baseline, profile, op counts, quality, phases, parts).
- :class:`TrialRecord`: one trial of a search, holding its :class:`Evaluation` and state.
- :class:`SearchResult`: a search's trials, frontier and context.
- :class:`StudyInfo`: that context (how the study was run, on what, what it learnt), with
  its parts: :class:`SessionEnergy`, :class:`Repeatability`, :class:`Importance`,
  :class:`CalibrationSummary`, :class:`PredictionStatus`, :class:`CarbonIntensity`,
  :class:`ProjectionSettings`, :class:`Capabilities`.
- :class:`Measurement`: a baseline or a trial's variant measured on its own.
- :class:`Outcomes`: an evaluated model's per-example results; :class:`AccuracyVsBaseline`
  (:func:`accuracy_vs_baseline`, :func:`accuracy_vs_baseline_unpaired`) and
  :class:`PerplexityVsBaseline` (:func:`perplexity_vs_baseline`): a variant against its
  baseline on the same examples, with the decision against a tolerance.

:func:`to_json` and :func:`from_json` are the one codec between these records and JSON; the
Optuna user attributes of a trial are written and read only by
:mod:`compresslab.study.attrs`. Nothing here imports torch, pandas or optuna.
"""

from compresslab.records._accuracy import (
    AccuracyVsBaseline,
    Outcomes,
    PerplexityVsBaseline,
    accuracy_vs_baseline,
    accuracy_vs_baseline_unpaired,
    perplexity_vs_baseline,
)
from compresslab.records._codec import RecordFormatError, from_json, to_json
from compresslab.records._energy import Contention, EnergyResult, Provenance
from compresslab.records._evaluation import (
    Answer,
    Evaluation,
    OpCounts,
    PairedRatio,
    PartTime,
    Profile,
    Quality,
)
from compresslab.records._info import (
    STUDY_DERIVED,
    CalibrationSummary,
    Capabilities,
    CarbonIntensity,
    HeldOut,
    Importance,
    PredictionStatus,
    ProjectionSettings,
    Repeatability,
    SessionEnergy,
    StudyInfo,
)
from compresslab.records._measurement import Measurement
from compresslab.records._search import SearchInterrupted, SearchResult
from compresslab.records._trial import (
    CalibrationUsed,
    Confirmation,
    Prediction,
    Screening,
    TrialRecord,
    dominates,
    pareto_front,
)

__all__ = [
    "STUDY_DERIVED",
    "AccuracyVsBaseline",
    "Answer",
    "CalibrationSummary",
    "CalibrationUsed",
    "Capabilities",
    "CarbonIntensity",
    "Confirmation",
    "Contention",
    "EnergyResult",
    "Measurement",
    "Evaluation",
    "HeldOut",
    "Importance",
    "OpCounts",
    "Outcomes",
    "PairedRatio",
    "PartTime",
    "PerplexityVsBaseline",
    "Prediction",
    "PredictionStatus",
    "Profile",
    "ProjectionSettings",
    "Provenance",
    "Quality",
    "RecordFormatError",
    "Repeatability",
    "Screening",
    "SearchInterrupted",
    "SearchResult",
    "SessionEnergy",
    "StudyInfo",
    "TrialRecord",
    "accuracy_vs_baseline",
    "accuracy_vs_baseline_unpaired",
    "dominates",
    "from_json",
    "pareto_front",
    "perplexity_vs_baseline",
    "to_json",
]
