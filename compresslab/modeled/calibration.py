"""The modeled tier calibrated to one machine: per-operation costs fitted to its measurements.

The modeled tier (:mod:`compresslab.modeled.costs`) prices counted operations with fixed 45 nm
figures, blind to what this CPU does: whether it runs bf16 natively or by conversion, what
int8 packing and per-call dispatch cost, which layers wait on memory. Here the same counts
(:func:`compresslab.modeled.ops.count_ops`, recorded with every trial as ``op_counts``) become the
features of a linear model whose coefficients, joules per MAC by number format, per byte
moved and per call, are fitted to the variants measured on this machine by non-negative
least squares (``scipy.optimize.nnls``) on relative errors, so that a 0.2 mJ variant weighs
as much as a 2 mJ one.

How well it predicts is measured, never assumed: every fit comes with leave-one-out figures
(each variant predicted by a fit on all the others): Spearman's rank correlation with the
measurements and the relative errors. ``error_rel``, the 90th percentile of those errors
(the largest one below 10 variants), is the error a prediction states.

A calibration holds the fingerprint of the machine it was fitted on
(:func:`compresslab.machine.fingerprint`). It is never used on another machine without
saying so: :func:`check_machine` refuses, or, when asked to go on, warns naming both.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from compresslab.errors import OtherMachineError
from compresslab.fsio import atomic_write_text
from compresslab.machine import describe_machine, fingerprint, machine_id
from compresslab.records import OpCounts, from_json

log = logging.getLogger(__name__)

#: The features, per inference, in the order of :attr:`Calibration.coefficients`.
FEATURES = (
    "mac_fp32",  # multiply-accumulates by the format they multiply in
    "mac_fp16",
    "mac_bf16",
    "mac_int8",
    "byte_dram",  # weights once per batch, plus the input
    "byte_sram",  # layer outputs, written and read back
    "call",  # one forward call per batch: dispatch and per-call overheads
)
#: What one unit of each feature is (for the report).
UNITS = {
    "mac_fp32": "fp32 MAC",
    "mac_fp16": "fp16 MAC",
    "mac_bf16": "bf16 MAC",
    "mac_int8": "int8 MAC",
    "byte_dram": "byte from DRAM",
    "byte_sram": "byte through SRAM",
    "call": "forward call",
}
#: Error percentile a prediction states (of the leave-one-out relative errors).
ERROR_QUANTILE = 0.9


class CalibrationMachineError(OtherMachineError):
    """A calibration fitted on another machine was about to be used here."""


def features(op_counts: OpCounts | Mapping[str, Any]) -> list[float]:
    """The feature vector (per inference) of one variant's counted operations.

    ``op_counts`` is the :class:`~compresslab.records.OpCounts` an evaluation holds (or its
    JSON form, as the benchmarks' replay tables keep it).
    """
    counts = op_counts if isinstance(op_counts, OpCounts) else from_json(OpCounts, op_counts)
    macs = counts.macs
    batch = max(1, counts.batch_size or 1)
    dram = counts.weight_bytes / batch + counts.input_bytes_per_example
    return [
        float(macs.get("fp32", 0.0)),
        float(macs.get("fp16", 0.0)),
        float(macs.get("bf16", 0.0)),
        float(macs.get("int8", 0.0)),
        dram,
        2.0 * counts.activation_bytes_per_example,
        1.0 / batch,
    ]


@dataclass(frozen=True)
class Sample:
    """One measured variant: its operation counts and its energy per inference (J)."""

    op_counts: OpCounts | Mapping[str, Any]
    energy_j: float
    label: str = ""
    trial: int | None = None


@dataclass(frozen=True)
class LeaveOneOut:
    """How well a calibration predicts variants it was not fitted on."""

    n: int
    spearman: float
    median_error_rel: float
    error_rel: float
    max_error_rel: float
    predictions: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Calibration:
    """Fitted joules per unit of each feature on one machine, and how well they predict.

    Attributes:
        coefficients: J per unit, by feature name (:data:`FEATURES`).
        identified: features that some fitted variant used (the others are 0 for lack of data,
            not because they are free).
        machine: the fingerprint of the machine it was fitted on.
        n: variants fitted.
        loo: leave-one-out figures (None below three variants).
        target: what was fitted (e.g. ``estimated J per inference``).
        fitted_at: Unix time of the fit.
        trials: the trial numbers fitted, when fitted from a study.
    """

    coefficients: dict[str, float]
    identified: list[str]
    machine: dict[str, str]
    n: int
    loo: LeaveOneOut | None
    target: str = "J per inference"
    fitted_at: float = 0.0
    trials: list[int] = field(default_factory=list)

    def predict(self, op_counts: OpCounts | Mapping[str, Any]) -> float:
        """Joules per inference of a variant from its ``op_counts``."""
        x = features(op_counts)
        return sum(c * v for c, v in zip(self.coefficients.values(), x, strict=True))

    @property
    def error_rel(self) -> float:
        """The relative error a prediction states (inf when it was not measured)."""
        return self.loo.error_rel if self.loo is not None else math.inf

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (:func:`from_dict` reads it back)."""
        return asdict(self)

    def describe(self) -> str:
        """One line: how many variants, Spearman and error on held-out variants."""
        if self.loo is None:
            return f"fitted on {self.n} variant(s): too few to test on held-out variants"
        loo = self.loo
        return (
            f"fitted on {self.n} measured variants; on each variant left out of the fit in "
            f"turn, Spearman {loo.spearman:.2f} against the measurements, relative error median "
            f"{100 * loo.median_error_rel:.0f}%, 90th percentile {100 * loo.error_rel:.0f}%, "
            f"largest {100 * loo.max_error_rel:.0f}%"
        )


def from_dict(data: Mapping[str, Any]) -> Calibration:
    """The calibration stored by :meth:`Calibration.to_dict`."""
    loo = data.get("loo")
    return Calibration(
        coefficients={k: float(v) for k, v in data["coefficients"].items()},
        identified=list(data.get("identified", [])),
        machine=dict(data.get("machine", {})),
        n=int(data["n"]),
        loo=LeaveOneOut(**loo) if loo else None,
        target=str(data.get("target", "J per inference")),
        fitted_at=float(data.get("fitted_at", 0.0)),
        trials=list(data.get("trials", [])),
    )


def _solve(rows: Sequence[Sequence[float]], targets: Sequence[float]) -> list[float]:
    """Non-negative least squares on relative residuals, columns scaled for conditioning."""
    import numpy as np
    from scipy.optimize import nnls

    x = np.asarray(rows, dtype=float)
    y = np.asarray(targets, dtype=float)
    a = x / y[:, None]  # relative residuals: (x b - y) / y
    scale = np.abs(a).max(axis=0)
    used = scale > 0
    coef = np.zeros(x.shape[1])
    if used.any():
        solved, _ = nnls(a[:, used] / scale[used], np.ones(len(y)))
        coef[used] = solved / scale[used]
    return [float(c) for c in coef]


def _spearman(a: Sequence[float], b: Sequence[float]) -> float:
    from scipy.stats import spearmanr

    if len(set(a)) < 2 or len(set(b)) < 2:
        return math.nan
    return float(spearmanr(a, b).statistic)


def leave_one_out(samples: Sequence[Sample]) -> LeaveOneOut | None:
    """Each sample predicted by a fit on all the others (None below three samples)."""
    if len(samples) < 3:
        return None
    rows = [features(s.op_counts) for s in samples]
    y = [s.energy_j for s in samples]
    preds = []
    for i in range(len(samples)):
        coef = _solve(rows[:i] + rows[i + 1 :], y[:i] + y[i + 1 :])
        preds.append(sum(c * v for c, v in zip(coef, rows[i], strict=True)))
    errors = sorted(abs(p / t - 1) for p, t in zip(preds, y, strict=True))
    if len(errors) >= 10:
        k = min(len(errors) - 1, math.ceil(ERROR_QUANTILE * len(errors)) - 1)
        stated = errors[k]
    else:
        stated = errors[-1]
    return LeaveOneOut(
        n=len(samples),
        spearman=_spearman(preds, y),
        median_error_rel=errors[len(errors) // 2]
        if len(errors) % 2
        else (errors[len(errors) // 2 - 1] + errors[len(errors) // 2]) / 2,
        error_rel=stated,
        max_error_rel=errors[-1],
        predictions=preds,
    )


def fit(
    samples: Sequence[Sample],
    *,
    machine: Mapping[str, str] | None = None,
    target: str = "J per inference",
    validate: bool = True,
) -> Calibration:
    """Fit the per-unit costs to measured samples (non-negative least squares).

    Args:
        samples: measured variants (at least one; a positive, finite energy each).
        machine: the fingerprint of the machine they were measured on (default: this one).
        target: what the energies are, in words (stored with the calibration).
        validate: also compute the leave-one-out figures.

    Raises:
        ValueError: no sample, or an energy that is not positive and finite.
    """
    if not samples:
        raise ValueError("a calibration needs at least one measured variant")
    bad = [s for s in samples if not (math.isfinite(s.energy_j) and s.energy_j > 0)]
    if bad:
        raise ValueError(f"energy must be positive and finite: {bad[0].energy_j!r}")
    rows = [features(s.op_counts) for s in samples]
    coef = _solve(rows, [s.energy_j for s in samples])
    identified = [name for j, name in enumerate(FEATURES) if any(r[j] > 0 for r in rows)]
    return Calibration(
        coefficients=dict(zip(FEATURES, coef, strict=True)),
        identified=identified,
        machine=dict(machine if machine is not None else fingerprint()),
        n=len(samples),
        loo=leave_one_out(samples) if validate else None,
        target=target,
        fitted_at=time.time(),
        trials=[s.trial for s in samples if s.trial is not None],
    )


def check_machine(
    calibration: Calibration,
    *,
    here: Mapping[str, str] | None = None,
    allow_other_machine: bool = False,
) -> bool:
    """Whether ``calibration`` was fitted on this machine; refuse (or warn) when not.

    Returns:
        True on the same machine; False on another one when ``allow_other_machine`` (after a
        warning that names both machines).

    Raises:
        CalibrationMachineError: fitted on another machine and not ``allow_other_machine``.
    """
    here = dict(here if here is not None else fingerprint())
    if machine_id(calibration.machine) == machine_id(here):
        return True
    message = (
        f"the energy calibration was fitted on {describe_machine(calibration.machine)}, not on "
        f"this machine, {describe_machine(here)}: per-operation costs differ between CPUs "
        "(native bf16 or not, int8 kernels, memory)"
    )
    if not allow_other_machine:
        raise CalibrationMachineError(
            message + ": fit one here from variants measured here (a search does this), or "
            "pass allow_other_machine=True to use it anyway"
        )
    log.warning("%s; using it anyway, as asked: its predictions are not this machine's", message)
    return False


def save(calibration: Calibration, path: Path) -> Path:
    """Write ``calibration`` as JSON (atomically) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, json.dumps(calibration.to_dict(), indent=2) + "\n")


def load(
    path: Path, *, here: Mapping[str, str] | None = None, allow_other_machine: bool = False
) -> Calibration:
    """Read a calibration written by :func:`save`, checked against this machine.

    Raises:
        CalibrationMachineError: it was fitted on another machine (see :func:`check_machine`).
    """
    calibration = from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
    check_machine(calibration, here=here, allow_other_machine=allow_other_machine)
    return calibration
