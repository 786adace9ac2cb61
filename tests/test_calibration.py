"""The calibrated energy model: recovers known costs, tests itself held out, knows its machine."""

from __future__ import annotations

import logging
import math
import random
from pathlib import Path

import pytest

from compresslab.modeled import calibration
from compresslab.modeled.calibration import (
    FEATURES,
    CalibrationMachineError,
    Sample,
    check_machine,
    features,
    fit,
    leave_one_out,
)

HERE = {"host": "lab-1", "cpu_model": "Xeon A", "logical_cpus": "2", "platform": "x", "python": "3"}
#: Known costs, joules per unit: bf16 dearer than fp32 (a CPU without native bf16).
TRUE = {
    "mac_fp32": 2e-10,
    "mac_fp16": 0.0,
    "mac_bf16": 9e-10,
    "mac_int8": 5e-11,
    "byte_dram": 3e-9,
    "byte_sram": 1e-11,
    "call": 2e-4,
}


def _counts(rng: random.Random, fmt: str) -> dict[str, object]:
    macs = rng.uniform(1e5, 2e6)
    other = rng.uniform(0, 2e5)
    split = {"fp32": macs} if fmt == "fp32" else {fmt: macs, "fp32": other}
    return {
        "macs": split,
        "weight_bytes": rng.uniform(1e4, 4e5),
        "activation_bytes_per_example": rng.uniform(1e3, 5e4),
        "input_bytes_per_example": 256.0,
        "batch_size": rng.choice([32, 256]),
    }


def _true_j(counts: dict[str, object]) -> float:
    return sum(c * x for c, x in zip(TRUE.values(), features(counts), strict=True))


def _samples(n: int, *, noise: float = 0.0, seed: int = 0) -> list[Sample]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        counts = _counts(rng, ("fp32", "bf16", "int8")[i % 3])
        out.append(Sample(counts, _true_j(counts) * (1 + rng.gauss(0, noise)), f"v{i}", i))
    return out


def test_features_are_per_inference_in_a_fixed_order() -> None:
    counts = {
        "macs": {"fp32": 10.0, "int8": 4.0},
        "weight_bytes": 512.0,
        "activation_bytes_per_example": 3.0,
        "input_bytes_per_example": 2.0,
        "batch_size": 256,
    }
    x = dict(zip(FEATURES, features(counts), strict=True))
    assert x == {
        "mac_fp32": 10.0,
        "mac_fp16": 0.0,
        "mac_bf16": 0.0,
        "mac_int8": 4.0,
        "byte_dram": 512 / 256 + 2.0,  # weights once per batch, the input per example
        "byte_sram": 6.0,  # written and read back
        "call": 1 / 256,
    }


def test_fit_recovers_known_costs_from_exact_data() -> None:
    cal = fit(_samples(24), machine=HERE)
    for name, true in TRUE.items():
        assert cal.coefficients[name] == pytest.approx(true, rel=1e-6, abs=1e-15), name
    assert "mac_fp16" not in cal.identified  # no fp16 variant: 0 for lack of data, said so
    assert set(cal.identified) == set(FEATURES) - {"mac_fp16"}
    assert cal.loo is not None and cal.loo.spearman == pytest.approx(1.0)
    assert cal.loo.max_error_rel < 1e-6
    counts = _counts(random.Random(99), "bf16")
    assert cal.predict(counts) == pytest.approx(_true_j(counts), rel=1e-6)


def test_costs_are_never_negative_and_noise_shows_in_the_held_out_error() -> None:
    cal = fit(_samples(30, noise=0.1, seed=3), machine=HERE)
    assert all(v >= 0 for v in cal.coefficients.values())
    loo = cal.loo
    assert loo is not None and loo.n == 30 and len(loo.predictions) == 30
    # 10% measurement noise: held-out errors of that order, ranks still close
    assert 0.02 < loo.median_error_rel < 0.3
    assert loo.median_error_rel <= loo.error_rel <= loo.max_error_rel
    assert loo.spearman > 0.8
    assert cal.error_rel == loo.error_rel


def test_leave_one_out_is_computed_by_hand() -> None:
    samples = _samples(12, noise=0.05, seed=5)
    loo = leave_one_out(samples)
    assert loo is not None
    i = 4
    alone = fit(samples[:i] + samples[i + 1 :], machine=HERE, validate=False)
    assert loo.predictions[i] == pytest.approx(alone.predict(samples[i].op_counts))
    errors = sorted(abs(p / s.energy_j - 1) for p, s in zip(loo.predictions, samples, strict=True))
    assert loo.max_error_rel == pytest.approx(errors[-1])
    assert loo.error_rel == pytest.approx(errors[math.ceil(0.9 * 12) - 1])  # 90th percentile
    assert leave_one_out(samples[:2]) is None  # too few to hold any out


def test_a_fit_refuses_what_it_cannot_use() -> None:
    with pytest.raises(ValueError, match="at least one"):
        fit([], machine=HERE)
    bad = Sample(_samples(1)[0].op_counts, 0.0)
    with pytest.raises(ValueError, match="positive"):
        fit([bad], machine=HERE)


def test_a_calibration_is_refused_on_another_machine(tmp_path: Path) -> None:
    cal = fit(_samples(10), machine=HERE)
    path = calibration.save(cal, tmp_path / "cal" / "digits.json")
    same = calibration.load(path, here={**HERE, "python": "3.12", "platform": "newer kernel"})
    assert same.coefficients == pytest.approx(cal.coefficients)
    assert same.loo is not None and same.loo.spearman == pytest.approx(cal.loo.spearman)
    other = {**HERE, "host": "lab-2", "cpu_model": "EPYC B"}
    with pytest.raises(CalibrationMachineError) as e:
        calibration.load(path, here=other)
    assert "lab-1 (Xeon A" in str(e.value) and "lab-2 (EPYC B" in str(e.value)
    assert "allow_other_machine" in str(e.value)


def test_another_machine_is_named_when_use_is_forced(caplog: pytest.LogCaptureFixture) -> None:
    cal = fit(_samples(10), machine=HERE)
    other = {**HERE, "cpu_model": "Xeon with AMX"}
    with caplog.at_level(logging.WARNING, logger="compresslab.modeled.calibration"):
        assert check_machine(cal, here=other, allow_other_machine=True) is False
    assert "Xeon A" in caplog.text and "Xeon with AMX" in caplog.text
    assert check_machine(cal, here=HERE) is True
