"""Paired measurement: windows interleaved ABBA, the ratio's interval from the pairs."""

from __future__ import annotations

import pytest
from protocol_fakes import CostSampler

from compresslab.protocol import Protocol, Workload, measure_paired

FAST = Protocol(warmup_s=0.0, window_s=0.01, min_windows=3, max_windows=8, target_ci_rel=0.02)


def test_windows_alternate_abba_and_the_ratio_is_exact_on_a_steady_machine() -> None:
    sampler = CostSampler()
    ref = Workload(sampler.workload("A", 2.0), inferences_per_call=4)
    cand = Workload(sampler.workload("B", 0.5), inferences_per_call=4)
    result = measure_paired(ref, cand, sampler=sampler, protocol=FAST)
    assert result.ratio.ratio == pytest.approx(0.25)
    assert result.ratio.low == pytest.approx(0.25) and result.ratio.high == pytest.approx(0.25)
    assert result.reference.energy_j_per_inference == pytest.approx(0.5)
    assert result.candidate.energy_j_per_inference == pytest.approx(0.125)
    # warm-up A, B; then A B | B A | A B (three pairs reach the target on a steady machine)
    assert sampler.log == ["A", "B", "A", "B", "A", "B"]
    assert result.ratio.pairs == 3 and result.ci_target_met
    assert result.vs_reference().order == "ABBA"


def test_a_load_change_between_pairs_cancels_in_the_ratio() -> None:
    # The machine gets 3x more expensive after three pairs (another job starts): absolute
    # figures spread widely, the ratio of windows measured side by side does not.
    sampler = CostSampler(window_factor=lambda window: 1.0 if window <= 6 else 3.0)
    ref = Workload(sampler.workload("A", 1.0, scaled=True), inferences_per_call=1)
    cand = Workload(sampler.workload("B", 0.5, scaled=True), inferences_per_call=1)
    protocol = Protocol(warmup_s=0.0, window_s=0.01, min_windows=6, max_windows=6)
    result = measure_paired(ref, cand, sampler=sampler, protocol=protocol)
    windows = result.reference.window_j_per_inference
    assert max(windows) / min(windows) == pytest.approx(3.0)  # the absolute figure moved
    assert result.ratio.ratio == pytest.approx(0.5)  # the paired ratio did not
    assert result.ratio.low == pytest.approx(0.5) and result.ratio.high == pytest.approx(0.5)


def test_the_ratio_interval_widens_with_noisy_pairs() -> None:
    # Only the reference's windows move (1.0, 1.3, 0.8, ...): the pairs disagree.
    noise = [1.0, 1.3, 0.8, 1.1, 0.9, 1.2, 1.0, 0.85]
    sampler = CostSampler(window_factor=lambda window: noise[(window - 1) % len(noise)])
    ref = Workload(sampler.workload("A", 1.0, scaled=True), inferences_per_call=1)
    cand = Workload(sampler.workload("B", 1.0), inferences_per_call=1)
    protocol = Protocol(
        warmup_s=0.0, window_s=0.005, min_windows=3, max_windows=4, target_ci_rel=1e-6
    )
    result = measure_paired(ref, cand, sampler=sampler, protocol=protocol)
    assert result.ratio.low < result.ratio.ratio < result.ratio.high
    assert result.ratio.high / result.ratio.low > 1.05  # the disagreement shows
    assert result.ratio.pairs == 4 and not result.ci_target_met
