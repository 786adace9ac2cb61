"""The typed record spine: what the bench produces, the study stores and the report reads.

- :class:`EnergyResult` (with :class:`Provenance` and :class:`Contention`): one measurement.
- :class:`Evaluation`: everything evaluating one variant produced (metric, energy, the paired
  ratio to the baseline, profile, op counts, quality, phases, parts).
- :class:`TrialRecord`: one trial of a search, holding its :class:`Evaluation` and state.
- :class:`SearchResult`: a search's trials, frontier and context.
- :class:`Measurement`: a baseline or a trial's variant measured on its own.

:func:`to_json` and :func:`from_json` are the one codec between these records and JSON; the
Optuna user attributes of a trial are written and read only by
:mod:`compresslab.study.attrs`. Nothing here imports torch, pandas or optuna.
"""

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
    "Answer",
    "CalibrationUsed",
    "Confirmation",
    "Contention",
    "EnergyResult",
    "Measurement",
    "Evaluation",
    "OpCounts",
    "PairedRatio",
    "PartTime",
    "Prediction",
    "Profile",
    "Provenance",
    "Quality",
    "RecordFormatError",
    "Screening",
    "SearchInterrupted",
    "SearchResult",
    "TrialRecord",
    "dominates",
    "from_json",
    "pareto_front",
    "to_json",
]
