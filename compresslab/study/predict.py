"""Prediction that saves measurements: skip variants a calibrated model knows are dominated.

Once a study has measured enough variants on this machine (``search.predict_min_measured``,
default 8), the modeled tier is calibrated to them (:mod:`compresslab.modeled.calibration`:
per-format costs fitted by non-negative least squares, tested leave-one-out). If its held-out
error is acceptable (``error_rel``, the 90th percentile of the leave-one-out relative errors,
at most ``search.predict_max_error``), each new variant's energy is predicted from its
operation counts before it is measured. Its accuracy is measured first anyway; when even the
optimistic end of the prediction, ``predicted x (1 - error_rel)``, is dominated by a variant of
the current feasible frontier (as accurate or more, and cheaper), the variant is not measured:
it is recorded as *predicted dominated*, an Optuna PRUNED trial with a ``predicted`` attribute
(the prediction, its stated error, the calibration's leave-one-out figures and the dominating
trial). It counts towards the budget like a screened variant, and ``compresslab measure RECIPE
--trial N`` measures it whenever its prediction is to be checked.

Everything is fitted from the study's storage alone: each measured trial records its
``op_counts``, its paired ratio to the baseline and the machine it ran on (``machine_id``).
Only trials measured on this machine are fitted; a calibration stored by another machine is
not used here (see :func:`compresslab.modeled.calibration.check_machine`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from compresslab.errors import StorageError
from compresslab.machine import fingerprint
from compresslab.modeled.calibration import Calibration, Sample, check_machine, fit, machine_id
from compresslab.modeled.calibration import from_dict as calibration_from_dict
from compresslab.recipe import Recipe
from compresslab.records import (
    CalibrationSummary,
    CalibrationUsed,
    OpCounts,
    Prediction,
    PredictionStatus,
    RecordFormatError,
    from_json,
)
from compresslab.study import attrs
from compresslab.study.space import SearchSpace

log = logging.getLogger(__name__)

#: Study attribute prefix of the latest calibration fitted on one machine's trials
#: (``calibration:<machine id>``).
CALIBRATION_PREFIX = "calibration:"
#: Trial attribute with the machine a trial was measured on (:func:`machine_id`).
MACHINE_ATTR = attrs.MACHINE
#: Study attribute: how prediction stood at the end of the last session (``status``).
PREDICTION_ATTR = "prediction"
#: Runtime knobs that change energy in ways operation counts cannot see.
_UNSEEN_KNOBS = ("threads", "power_limit_w")


def prediction_blocker(recipe: Recipe, space: SearchSpace) -> str | None:
    """Why this search does not predict (None: it does, once it has measured enough)."""
    if not recipe.search.predict:
        return "search.predict is false: every variant is measured"
    unseen = [f"runtime.{k}" for k in _UNSEEN_KNOBS if k in space.runtime]
    if unseen:
        return (
            f"the search varies {', '.join(unseen)}, which operation counts cannot see: every "
            "variant is measured"
        )
    return None


class PredictedDominated(Exception):
    """A variant predicted, with its stated error, to be dominated: not measured."""

    def __init__(self, prediction: Prediction) -> None:
        super().__init__(prediction.reason)
        self.prediction = prediction


def study_samples(trials: list[Any], *, machine: str | None = None) -> list[Sample]:
    """The measured variants of a study's trials that a calibration can be fitted on.

    A sample is a distinct variant measured to completion with its ``op_counts`` recorded; its
    energy is on the study's common scale (its paired ratio x the baseline trial's own
    figure). With ``machine``, only trials measured on that machine (older trials, which
    record no machine, are left out).
    """
    base_j = attrs.baseline_j(trials)
    if not base_j:
        return []
    out = []
    for t in trials:
        if t.state.name != "COMPLETE":
            continue
        stored = attrs.read(t)
        ev = stored.evaluation
        if ev is None or ev.vs_baseline is None or stored.reused_from is not None:
            continue
        if machine is not None and stored.machine_id != machine:
            continue
        ratio = ev.vs_baseline.ratio
        if not ev.op_counts.macs or not math.isfinite(ratio) or ratio <= 0:
            continue
        out.append(Sample(ev.op_counts, ratio * base_j, stored.variant or "", t.number))
    return out


def _frontier(
    trials: list[Any], min_accuracy: float, base_j: float
) -> list[tuple[float, float, int]]:
    """The feasible measured variants as (accuracy, J per inference, trial), non-dominated."""
    pool = []
    for t in trials:
        if t.state.name != "COMPLETE" or not t.values:
            continue
        stored = attrs.read(t)
        ev = stored.evaluation
        if stored.reused_from is not None or ev is None or ev.vs_baseline is None:
            continue
        claim = ev.accuracy_vs_baseline
        # Only variants decided within the tolerance make the frontier (the point comparison in
        # studies whose search decided nothing).
        feasible = claim.decision == "within" if claim is not None else t.values[0] >= min_accuracy
        if not feasible:
            continue
        ratio = ev.vs_baseline.ratio
        pool.append((float(t.values[0]), ratio * base_j, int(t.number)))
    return [
        p
        for p in pool
        if not any(q[0] >= p[0] and q[1] <= p[1] and (q[0] > p[0] or q[1] < p[1]) for q in pool)
    ]


class Predictor:
    """Decides, before a variant's energy is measured, whether to skip it (see the module).

    Args:
        min_accuracy: the tolerance's minimum accuracy (the frontier holds feasible variants).
        min_measured: variants measured on this machine before any prediction is trusted.
        max_error: the largest stated (90th percentile leave-one-out) relative error at which
            predictions are used.
    """

    def __init__(self, *, min_accuracy: float, min_measured: int, max_error: float) -> None:
        self.min_accuracy = min_accuracy
        self.min_measured = min_measured
        self.max_error = max_error
        self.machine = fingerprint()
        self.machine_id = machine_id(self.machine)
        self._fitted: tuple[tuple[int, ...], Calibration] | None = None
        self.status = "not enough variants measured yet"

    def calibration(self, study: Any, trials: list[Any] | None = None) -> Calibration | None:
        """The calibration on this study's variants measured here (refitted when they change)."""
        trials = trials if trials is not None else study.get_trials(deepcopy=False)
        samples = study_samples(trials, machine=self.machine_id)
        if len(samples) < max(3, self.min_measured):
            self.status = (
                f"{len(samples)} of the {max(3, self.min_measured)} variants measured on this "
                "machine that a calibration needs"
            )
            return None
        key = tuple(s.trial or -1 for s in samples)
        if self._fitted is None or self._fitted[0] != key:
            cal = fit(samples, machine=self.machine, target="J per inference (study scale)")
            self._fitted = (key, cal)
            _store(study, cal, self.machine)
        return self._fitted[1]

    def check(self, study: Any, *, metric: float, op_counts: OpCounts) -> None:
        """Raise :class:`PredictedDominated` when the variant is predicted dominated.

        Returns quietly when it is not, or when no trustworthy prediction exists (too few
        variants measured here, or a held-out error above ``max_error``): then it is measured.
        """
        trials = study.get_trials(deepcopy=False)
        try:
            cal = self.calibration(study, trials)
        except Exception as e:  # a prediction never fails a trial: the variant is measured
            self.status = f"no prediction: the calibration failed ({type(e).__name__}: {e})"
            log.warning("%s", self.status)
            return
        if cal is None:
            return
        err = cal.error_rel
        rho = cal.loo.spearman if cal.loo is not None else math.nan
        if not (err <= self.max_error):
            self.status = (
                f"calibration not trusted: held-out error {100 * err:.0f}% is above "
                f"{100 * self.max_error:.0f}%"
            )
            return
        self.status = f"predicting: {cal.describe()}"
        base_j = attrs.baseline_j(trials)
        if base_j is None:
            return
        predicted = cal.predict(op_counts)
        optimistic = predicted * (1 - err)
        dominating = [
            p
            for p in _frontier(trials, self.min_accuracy, base_j)
            if p[0] >= metric and p[1] <= optimistic and (p[0] > metric or p[1] < optimistic)
        ]
        if not dominating:
            return
        acc, energy, number = min(dominating, key=lambda p: p[1])
        raise PredictedDominated(
            Prediction(
                reason=(
                    f"predicted dominated: {predicted * 1e3:.3g} mJ per inference predicted "
                    f"(±{100 * err:.0f}%, optimistic {optimistic * 1e3:.3g} mJ) at accuracy "
                    f"{metric:.4f}; trial {number} is at least as accurate ({acc:.4f}) for "
                    f"{energy * 1e3:.3g} mJ; energy not measured"
                ),
                accuracy=metric,
                j_per_inference=predicted,
                ratio=predicted / base_j,
                error_rel=err,
                optimistic_j_per_inference=optimistic,
                dominated_by=number,
                dominating_accuracy=acc,
                dominating_j_per_inference=energy,
                calibration=CalibrationUsed(
                    n=cal.n,
                    loo_spearman=rho,
                    loo_median_error_rel=cal.loo.median_error_rel if cal.loo else None,
                    fitted_at=cal.fitted_at,
                    machine_id=self.machine_id,
                ),
                provenance="modeled",
            )
        )


def _store(study: Any, cal: Calibration, machine: dict[str, str]) -> None:
    """Keep the newest calibration with the study, one per machine (a fleet has several)."""
    study.set_user_attr(CALIBRATION_PREFIX + machine_id(machine), cal.to_dict())


def _stored(user_attrs: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The calibrations a study stores, by machine id, as stored."""
    return {
        key.removeprefix(CALIBRATION_PREFIX): value
        for key, value in user_attrs.items()
        if key.startswith(CALIBRATION_PREFIX) and isinstance(value, Mapping)
    }


def stored_calibrations(user_attrs: Mapping[str, Any]) -> dict[str, CalibrationSummary]:
    """Every calibration a study stores, by machine id, as the report states them.

    Raises:
        StorageError: a stored calibration does not fit its record (the message names it).
    """
    out = {}
    for machine, value in _stored(user_attrs).items():
        try:
            out[machine] = from_json(CalibrationSummary, value)
        except RecordFormatError as e:
            raise StorageError(
                f"the study's calibration for machine {machine} cannot be read ({e}): it was "
                "written by another compresslab version; report the study with that version"
            ) from e
    return out


def prediction_status(user_attrs: Mapping[str, Any]) -> PredictionStatus | None:
    """How prediction stood at the end of the study's last session (None: not recorded)."""
    stored = user_attrs.get(PREDICTION_ATTR)
    if not isinstance(stored, Mapping):
        return None
    return PredictionStatus(status=str(stored.get("status") or ""))


def stored_calibration(study: Any, *, allow_other_machine: bool = False) -> Calibration | None:
    """This machine's calibration stored with a study (None: the study holds none).

    When the study holds calibrations of other machines only, one of them is used only when
    ``allow_other_machine`` (with a warning naming both machines); else this refuses.

    Raises:
        CalibrationMachineError: only other machines' calibrations, and not
            ``allow_other_machine``.
    """
    stored = _stored(study.user_attrs)
    if not stored:
        return None
    here = machine_id()
    cal = calibration_from_dict(stored.get(here) or next(iter(stored.values())))
    check_machine(cal, allow_other_machine=allow_other_machine)
    return cal


def calibrate_study(study: Any) -> Calibration | None:
    """Fit a calibration on every variant of ``study`` measured on this machine (None: < 3)."""
    samples = study_samples(study.get_trials(deepcopy=False), machine=machine_id())
    if len(samples) < 3:
        return None
    return fit(samples, target="J per inference (study scale)")


def store_final_calibration(study: Any) -> Calibration | None:
    """At the end of a search: fit on every variant measured here and keep it with the study.

    A search stores a calibration while it predicts, fitted on the variants measured before
    each prediction; one that measured fewer than ``predict_min_measured`` variants, or none
    after its last fit, would otherwise leave none, or a stale one, for the report and for
    later use. Never fails the search: a calibration that cannot be fitted is logged.
    """
    try:
        cal = calibrate_study(study)
        if cal is not None:
            _store(study, cal, fingerprint())
        return cal
    except Exception as e:  # the search's figures stand without it
        log.warning("no calibration stored: %s: %s", type(e).__name__, e)
        return None
