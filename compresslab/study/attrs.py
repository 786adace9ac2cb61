"""The one module that knows how a trial's figures are stored as Optuna user attributes.

Writers (the objective, the confirmation) and readers (records, prediction, commands) go
through here; nothing else reads a trial's figures by key. A trial's record is versioned:

- format 1 (this release): the whole :class:`~compresslab.records.Evaluation` under
  ``evaluation`` (its JSON form, :func:`compresslab.records.to_json`), ``format: 1``.
- format 0 (compresslab 0.1.0 studies): one attribute per figure (``energy``,
  ``vs_baseline``, ``accuracy_ci95``, ``op_counts``, ``n_params`` ...), the metric in the
  trial's first objective value. Read, never written.

Adding a figure to :class:`~compresslab.records.Evaluation` needs nothing here: format 1 is
serialized from the record's annotations, and an older trial reads the field's default.

The study's context (:class:`~compresslab.records.StudyInfo`, ``report_info``) is written and
read here too: its JSON form, read tolerantly (a field an older study lacks, or stored as null,
takes its default).

The worker's own bookkeeping (``pid``, ``worker``, ``heartbeat``: :mod:`.workers`,
:mod:`.heartbeat`) and the study's session entries (:mod:`.sessions`) are not figures and
keep their keys there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from compresslab.errors import StorageError
from compresslab.records import (
    STUDY_DERIVED,
    Answer,
    Confirmation,
    EnergyResult,
    Evaluation,
    OpCounts,
    PairedRatio,
    PartTime,
    Prediction,
    Profile,
    Quality,
    RecordFormatError,
    Screening,
    StudyInfo,
    from_json,
    to_json,
)

#: The format this release writes (see the module docstring).
FORMAT_VERSION = 1

# --- trial attributes -------------------------------------------------------------------------
FORMAT = "format"
VARIANT = "variant"
SPEC = "spec"
RUNTIME = "runtime"
#: Marks the uncompressed baseline (also set when it is enqueued).
BASELINE = "is_baseline"
#: The id of the machine a trial was measured on (:func:`compresslab.machine.machine_id`).
MACHINE = "machine_id"
EVALUATION = "evaluation"
SCREENED = "screened"
SCREEN_ACCURACY = "screen_accuracy"
PREDICTED = "predicted"
ERROR = "error"
SKIPPED = "skipped"
REUSED_FROM = "reused_from"
DURATION = "duration_s"
HOST = "host"
PARTS = "parts"
#: The trial whose interrupted variant this one retries (set when it is enqueued).
RETRY_OF = "retry_of"

# --- study attributes -------------------------------------------------------------------------
BASELINE_ACCURACY = "baseline_accuracy"
REPORT_INFO = "report_info"
#: A confirmed claim is stored with the study (``confirmed:<trial number>``): finished trials
#: cannot take new attributes, the study can.
CONFIRMED_PREFIX = "confirmed:"

#: Format 0's attributes of an evaluation, besides the metric (the trial's first value).
_FORMAT0_FIGURES = (
    "accuracy_ci95",
    "energy",
    "reference_energy",
    "vs_baseline",
    "modeled_j_per_inference",
    "n_params",
    "macs_per_inference",
    "size_bytes",
    "memory_bytes",
    "sparsity",
    "notes",
    "op_counts",
    "quality",
    "answers",
    "phases",
)


@dataclass(frozen=True)
class TrialAttrs:
    """What a trial stores, typed: its variant, its evaluation or why it has none.

    ``evaluation`` is set for a trial whose variant was evaluated and measured to the end (a
    completed trial, or a running one whose result is written); ``screening``,
    ``prediction``, ``error`` and ``skipped`` say why a trial has none.
    """

    format: int = 0
    variant: str | None = None
    spec: Mapping[str, Any] | None = None
    runtime: Mapping[str, Any] = field(default_factory=dict)
    is_baseline: bool = False
    machine_id: str | None = None
    evaluation: Evaluation | None = None
    screening: Screening | None = None
    prediction: Prediction | None = None
    error: str | None = None
    skipped: str | None = None
    reused_from: int | None = None
    duration_s: float | None = None
    host: str | None = None
    parts: dict[str, PartTime] = field(default_factory=dict)


def read(trial: Any) -> TrialAttrs:
    """The typed attributes of a (frozen or live) Optuna trial.

    Raises:
        StorageError: a stored figure does not fit its record (the message names the trial
            and the field).
    """
    ua = trial.user_attrs
    try:
        return TrialAttrs(
            format=int(ua.get(FORMAT, 0)),
            variant=ua.get(VARIANT),
            spec=ua.get(SPEC),
            runtime=dict(ua.get(RUNTIME) or {}),
            is_baseline=bool(ua.get(BASELINE, False)),
            machine_id=ua.get(MACHINE),
            evaluation=_evaluation(trial),
            screening=_screening(ua),
            prediction=from_json(Prediction, ua[PREDICTED]) if PREDICTED in ua else None,
            error=ua.get(ERROR),
            skipped=ua.get(SKIPPED),
            reused_from=ua.get(REUSED_FROM),
            duration_s=ua.get(DURATION),
            host=ua.get(HOST),
            parts=from_json(dict[str, PartTime], ua.get(PARTS) or {}),
        )
    except RecordFormatError as e:
        raise StorageError(
            f"trial {trial.number} holds a figure this version cannot read ({e}); the study was "
            "written by another compresslab version: report it with that version"
        ) from e


def _screening(ua: Mapping[str, Any]) -> Screening | None:
    if SCREENED not in ua:
        return None
    accuracy = ua.get(SCREEN_ACCURACY)
    return Screening(str(ua[SCREENED]), None if accuracy is None else float(accuracy))


def _evaluation(trial: Any) -> Evaluation | None:
    ua = trial.user_attrs
    if EVALUATION in ua:
        return from_json(Evaluation, ua[EVALUATION])
    if "energy" not in ua or not getattr(trial, "values", None):
        return None
    # Format 0: one attribute per figure, the metric in the first objective value.
    get = ua.get
    ci = get("accuracy_ci95")
    metric = float(trial.values[0])
    return Evaluation(
        metric=metric,
        metric_ci95=(float(ci[0]), float(ci[1])) if ci else (metric, metric),
        energy=from_json(EnergyResult, ua["energy"]),
        # Studies from before pairing measured each variant alone: no ratio (None).
        vs_baseline=from_json(PairedRatio, get("vs_baseline")) if get("vs_baseline") else None,
        reference_energy=(
            from_json(EnergyResult, get("reference_energy")) if get("reference_energy") else None
        ),
        modeled_j_per_inference=float(get("modeled_j_per_inference") or float("nan")),
        profile=Profile(
            n_params=get("n_params"),
            macs_per_inference=get("macs_per_inference"),
            size_bytes=get("size_bytes"),
            memory_bytes=get("memory_bytes"),
            sparsity=get("sparsity"),
        ),
        op_counts=from_json(OpCounts, get("op_counts") or {}),
        notes=tuple(get("notes") or ()),
        quality=from_json(Quality, get("quality") or {}),
        answers=from_json(tuple[Answer, ...], get("answers") or ()),
        phases=from_json(dict[str, EnergyResult], get("phases") or {}),
        parts=from_json(dict[str, PartTime], get("parts") or {}),
    )


# --- writing ----------------------------------------------------------------------------------


def write_variant(
    trial: Any,
    *,
    label: str,
    spec: Mapping[str, Any],
    runtime: Mapping[str, Any],
    is_baseline: bool,
) -> None:
    """Record which variant a trial builds and how it runs (before it is built)."""
    trial.set_user_attr(FORMAT, FORMAT_VERSION)
    trial.set_user_attr(VARIANT, label)
    trial.set_user_attr(SPEC, dict(spec))
    trial.set_user_attr(RUNTIME, dict(runtime))
    trial.set_user_attr(BASELINE, is_baseline)


def write_evaluation(trial: Any, evaluation: Evaluation) -> None:
    """Store what evaluating the trial's variant produced (format :data:`FORMAT_VERSION`)."""
    trial.set_user_attr(FORMAT, FORMAT_VERSION)
    trial.set_user_attr(EVALUATION, to_json(evaluation))
    trial.set_user_attr(PARTS, to_json(evaluation.parts))


def write_screening(trial: Any, screening: Screening) -> None:
    """Record that the trial's variant was screened out (not measured), and why."""
    trial.set_user_attr(SCREENED, screening.reason)
    trial.set_user_attr(SCREEN_ACCURACY, screening.accuracy)


def write_prediction(trial: Any, prediction: Prediction) -> None:
    """Record that the trial's variant was predicted dominated (not measured)."""
    trial.set_user_attr(PREDICTED, to_json(prediction))


def write_parts(trial: Any, parts: Mapping[str, PartTime]) -> None:
    """Record the time each part of the trial took (also when it stopped before measuring)."""
    trial.set_user_attr(PARTS, to_json(dict(parts)))


def copy_result(trial: Any, previous: Any) -> None:
    """Give ``trial`` the evaluation of ``previous``, which evaluated the same variant.

    The figures are copied as stored (format 0 or 1), so the copy reads as the original does.
    """
    ua = previous.user_attrs
    trial.set_user_attr(FORMAT, ua.get(FORMAT, 0))
    for key in (EVALUATION, PARTS, *_FORMAT0_FIGURES):
        if key in ua:  # studies from older versions lack newer keys
            trial.set_user_attr(key, ua[key])


# --- the study's attributes -------------------------------------------------------------------


def confirmations(user_attrs: Mapping[str, Any]) -> dict[int, Confirmation]:
    """Confirmed claims stored with a study, by trial number."""
    return {
        int(key.removeprefix(CONFIRMED_PREFIX)): from_json(Confirmation, value)
        for key, value in user_attrs.items()
        if key.startswith(CONFIRMED_PREFIX)
    }


def write_confirmation(study: Any, number: int, confirmation: Confirmation) -> None:
    """Store trial ``number``'s confirmation with the study (replacing an earlier one)."""
    study.set_user_attr(f"{CONFIRMED_PREFIX}{number}", to_json(confirmation))


def read_report_info(user_attrs: Mapping[str, Any]) -> StudyInfo:
    """The context a study stored when its search started (defaults where it stored none).

    Only the stored half of :class:`~compresslab.records.StudyInfo` is read: the fields read
    from the study as a whole (:data:`~compresslab.records.STUDY_DERIVED`) keep their
    defaults. A field stored as null or as an empty mapping reads as its default.

    Raises:
        StorageError: a stored field does not fit its record (the message names it).
    """
    stored = user_attrs.get(REPORT_INFO) or {}
    if not isinstance(stored, Mapping):
        stored = {}
    kept = {k: v for k, v in stored.items() if k not in STUDY_DERIVED and v is not None and v != {}}
    try:
        return from_json(StudyInfo, kept)
    except RecordFormatError as e:
        raise StorageError(
            f"the study's context ({REPORT_INFO}) holds a field this version cannot read ({e}); "
            "the study was written by another compresslab version: report it with that version"
        ) from e


def write_report_info(study: Any, info: StudyInfo) -> None:
    """Store the context of a study's search (its stored half, see :func:`read_report_info`)."""
    data = to_json(info)
    study.set_user_attr(REPORT_INFO, {k: v for k, v in data.items() if k not in STUDY_DERIVED})


def baseline_j(trials: list[Any]) -> float | None:
    """The first completed baseline trial's measured joules per inference (None: none yet)."""
    for t in trials:
        if t.state.name != "COMPLETE" or not t.user_attrs.get(BASELINE):
            continue
        evaluation = read(t).evaluation
        if evaluation is not None and evaluation.energy_j_per_inference:
            return evaluation.energy_j_per_inference
    return None
