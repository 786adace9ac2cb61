"""The machine's measured repeatability of paired ratios widens a single span's interval."""

from __future__ import annotations

import json
import logging
import math
import statistics
from pathlib import Path

import pytest
from protocol_fakes import CostSampler

from compresslab.errors import OtherMachineError
from compresslab.machine import fingerprint, machine_id
from compresslab.protocol import PairedResult, Protocol, Workload, measure_paired
from compresslab.protocol.ratio_repeatability import (
    MAX_AGE_S,
    RATIO_UNKNOWN,
    RatioTerm,
    pooled_ratio,
    ratio_term,
    record_confirmation,
    single_span,
    span_spread,
    widen_ratio,
)
from compresslab.protocol.repeatability import RepeatabilityStore, tier_of
from compresslab.records import to_json
from compresslab.stats import t95

TIER = tier_of("cost", "measured")
OTHER = {"host": "elsewhere", "cpu_model": "Other CPU", "logical_cpus": "64"}


def paired(level: float, noise: tuple[float, ...] = (1.0,), pairs: int = 3) -> PairedResult:
    """The candidate at ``level`` x the reference; the reference's windows scaled by ``noise``.

    Each pair's ratio is ``level / noise[window]`` exactly: a span whose pairs scatter as
    ``noise`` says, at a level that may differ from the last span's.
    """
    sampler = CostSampler(window_factor=lambda w: noise[(w - 1) % len(noise)])
    ref = Workload(sampler.workload("A", 1.0, scaled=True), inferences_per_call=1)
    cand = Workload(sampler.workload("B", level), inferences_per_call=1)
    protocol = Protocol(
        warmup_s=0.0, window_s=0.005, min_windows=pairs, max_windows=pairs, idle_s=0.0
    )
    return measure_paired(ref, cand, sampler=sampler, protocol=protocol)


def term(ci95_rel: float, machine: dict[str, str] | None = None) -> RatioTerm:
    return RatioTerm(
        tau=ci95_rel / t95(4),
        n=6,
        dof=4,
        ci95_rel=ci95_rel,
        tier=TIER,
        machine=machine if machine is not None else fingerprint(),
        source="two confirmations here",
    )


def test_a_span_gives_its_mean_log_ratio_and_the_variance_its_pairs_explain() -> None:
    # Reference windows (pairs 1..3) scaled 1.0, 1.0 | 1.2, 1.2 | ... per window of ABBA order.
    res = paired(0.5, noise=(1.0, 1.0, 1.25, 1.25, 0.8, 0.8))
    logs = [math.log(0.5 / f) for f in (1.0, 1.25, 0.8)]
    mean, within = span_spread(res)
    assert mean == pytest.approx(statistics.fmean(logs))
    assert mean == pytest.approx(math.log(res.ratio.ratio))
    assert within == pytest.approx(statistics.variance(logs) / 3)


def test_a_term_widens_the_pairs_interval_in_quadrature_on_the_log_scale() -> None:
    res = paired(0.5, noise=(1.0, 1.0, 1.1, 1.1, 0.95, 0.95))
    pairs = res.ratio
    assert pairs.low < pairs.ratio < pairs.high
    wide = widen_ratio(res, term(0.08))
    h_pairs = math.log(pairs.high / pairs.ratio)
    h = math.hypot(h_pairs, 0.08)
    assert wide.ratio.ratio == pytest.approx(pairs.ratio)  # the estimate does not move
    assert math.log(wide.ratio.high / wide.ratio.ratio) == pytest.approx(h)
    assert math.log(wide.ratio.ratio / wide.ratio.low) == pytest.approx(h)
    assert wide.ratio_pairs == pairs and wide.ratio.pairs == pairs.pairs
    assert (wide.ratio_repeatability_rel, wide.ratio_repeatability_source) == (
        0.08,
        "two confirmations here",
    )
    assert wide.ci_target_met == res.ci_target_met  # the stopping rule judged the pairs
    vs = wide.vs_reference()
    assert (vs.ci95_low, vs.ci95_high) == (wide.ratio.low, wide.ratio.high)
    assert (vs.ci95_low_pairs, vs.ci95_high_pairs) == (pairs.low, pairs.high)
    assert vs.ratio_repeatability_rel == 0.08
    json.dumps(to_json(vs))
    # A steady span (its pairs' interval is a point) gets the term alone.
    steady = widen_ratio(paired(0.5), term(0.08))
    assert steady.ratio.high == pytest.approx(0.5 * math.exp(0.08))
    # A term of another tier is refused.
    with pytest.raises(ValueError, match="cannot widen"):
        widen_ratio(res, RatioTerm(**{**term(0.08).to_dict(), "tier": "rapl/measured"}))


def test_unknown_leaves_the_pairs_interval_and_says_so(tmp_path: Path) -> None:
    res = paired(0.5, noise=(1.0, 1.0, 1.1, 1.1, 0.95, 0.95))
    out = single_span(res, store=RepeatabilityStore(tmp_path))
    assert out.ratio == out.ratio_pairs == res.ratio
    assert out.ratio_repeatability_rel is None
    assert out.ratio_repeatability_source == RATIO_UNKNOWN
    assert "pairs only" in RATIO_UNKNOWN and "confirm" in RATIO_UNKNOWN
    vs = out.vs_reference()
    assert vs.ratio_repeatability_source == RATIO_UNKNOWN
    assert (vs.ci95_low, vs.ci95_high) == (vs.ci95_low_pairs, vs.ci95_high_pairs)
    # Measured but never widened (the protocol's own result): not considered, said by None.
    raw = res.vs_reference()
    assert raw.ratio_repeatability_source is None
    assert raw.ci95_low_pairs == raw.ci95_low
    assert not RepeatabilityStore(tmp_path).path.exists()  # no key: nothing recorded


def test_confirmation_rounds_teach_the_excess_between_spans(tmp_path: Path) -> None:
    store = RepeatabilityStore(tmp_path)
    # Rounds at three levels, each round's pairs scattering a little.
    rounds = [
        paired(level, noise=(1.0, 1.0, 1.02, 1.02, 0.98, 0.98)) for level in (0.50, 0.56, 0.46)
    ]
    spans = [span_spread(r) for r in rounds]
    logs, within = [x for x, _ in spans], [v for _, v in spans]
    record_confirmation(
        store, key="db#digits#3", label="trial 3 of digits", tier=TIER, logs=logs, within=within
    )
    learnt = ratio_term(store, TIER)
    assert learnt is not None
    tau2 = statistics.variance(logs) - statistics.fmean(within)
    assert tau2 > 0
    assert learnt.tau == pytest.approx(math.sqrt(tau2))
    assert (learnt.n, learnt.dof) == (3, 2)
    assert learnt.ci95_rel == pytest.approx(t95(2) * math.sqrt(tau2))
    assert "3 confirmation rounds of trial 3 of digits" in learnt.source
    assert "on this machine" in learnt.source and TIER in learnt.source
    # The next single span is widened by it.
    res = single_span(paired(0.5), store=store)
    assert res.ratio_repeatability_rel == pytest.approx(learnt.ci95_rel)
    assert res.ratio.low < 0.5 * math.exp(-0.9 * learnt.ci95_rel)
    # Another tier knows nothing; old sources are not used.
    assert ratio_term(store, tier_of("rapl", "measured")) is None
    assert ratio_term(store, TIER, now=learnt_at(store) + MAX_AGE_S + 1) is None


def learnt_at(store: RepeatabilityStore) -> float:
    kind = store.read()["ratios"][TIER]["confirmations"]
    return max(float(c["at"]) for c in kind.values())


def test_pooling_weights_sources_by_dof_keeps_negative_excess_and_clips_at_zero() -> None:
    loose = {"logs": [0.0, 0.1, -0.1], "within": [0.0, 0.0, 0.0], "what": "loose", "at": 1e9}
    tight = {"logs": [0.0, 0.0, 0.0, 0.0], "within": [0.002] * 4, "what": "tight", "at": 1e9}
    pool = pooled_ratio([loose, tight], tier=TIER, machine=fingerprint())
    assert pool is not None
    expected = (2 * statistics.variance(loose["logs"]) + 3 * (0.0 - 0.002)) / 5
    assert expected > 0
    assert pool.tau == pytest.approx(math.sqrt(expected)) and (pool.n, pool.dof) == (7, 5)
    only_tight = pooled_ratio([tight], tier=TIER, machine=fingerprint())
    assert only_tight is not None and only_tight.tau == 0.0 and only_tight.ci95_rel == 0.0
    assert "no spread between spans beyond their pairs' own" in only_tight.source
    # A source needs three spans.
    short = {"logs": [0.0, 0.3], "within": [0.0, 0.0], "what": "two", "at": 1e9}
    assert pooled_ratio([short], tier=TIER, machine=fingerprint()) is None


def test_repeated_standalone_paired_measurements_teach_the_next(tmp_path: Path) -> None:
    store = RepeatabilityStore(tmp_path)
    levels = [0.50, 0.55, 0.45]
    for level in levels:
        out = single_span(paired(level), key="v", label="digits: pruned", store=store)
        assert out.ratio_repeatability_source == RATIO_UNKNOWN  # fewer than three before it
    res = single_span(paired(0.52), key="v", label="digits: pruned", store=store)
    logs = [math.log(v) for v in levels]
    assert res.ratio_repeatability_rel == pytest.approx(t95(2) * statistics.stdev(logs))
    assert "3 paired measurements of digits: pruned" in (res.ratio_repeatability_source or "")
    assert res.ratio.low < 0.45 and res.ratio.high > 0.55  # covers the others
    assert ratio_term(store, TIER).n == 4  # type: ignore[union-attr]


def test_another_machines_term_is_refused_unless_asked(caplog: pytest.LogCaptureFixture) -> None:
    res = paired(0.5)
    with pytest.raises(OtherMachineError, match="elsewhere .*not on this machine"):
        widen_ratio(res, term(0.1, machine=OTHER))
    with caplog.at_level(logging.WARNING):
        wide = widen_ratio(res, term(0.1, machine=OTHER), allow_other_machine=True)
    assert "elsewhere" in caplog.text
    assert (wide.ratio_repeatability_source or "").startswith("ANOTHER MACHINE")


def test_a_store_file_of_another_machine_is_never_used_nor_overwritten(tmp_path: Path) -> None:
    store = RepeatabilityStore(tmp_path)
    foreign = {
        "format": 1,
        "machine": OTHER,
        "tiers": {},
        "ratios": {
            TIER: {
                "confirmations": {
                    "x": {"label": "s", "logs": [0, 0.3, -0.3], "within": [0, 0, 0], "at": 4e9}
                },
                "workloads": {},
            }
        },
    }
    store.path.write_text(json.dumps(foreign))
    assert store.path.name == f"{machine_id()}.json"
    res = single_span(paired(0.5), key="v", label="m", store=store)
    assert res.ratio_repeatability_rel is None and res.ratio == res.ratio_pairs
    source = res.ratio_repeatability_source or ""
    assert source.startswith(RATIO_UNKNOWN)
    assert "another machine's figures, elsewhere (Other CPU, 64 CPUs)" in source
    assert json.loads(store.path.read_text()) == foreign  # untouched


def test_the_absolute_kind_and_the_ratios_share_one_file(tmp_path: Path) -> None:
    store = RepeatabilityStore(tmp_path)
    store.record_study(key="s", label="study digits", tier=TIER, cv=0.04, n=9)
    record_confirmation(store, key="c", label="t", tier=TIER, logs=[0, 0.1, -0.1], within=[0] * 3)
    data = json.loads(store.path.read_text())
    assert set(data["tiers"][TIER]["studies"]) == {"s"}
    assert set(data["ratios"][TIER]["confirmations"]) == {"c"}
    assert store.term(TIER) is not None and ratio_term(store, TIER) is not None


def test_an_unreadable_entry_is_skipped_and_never_fails_a_measurement(tmp_path: Path) -> None:
    store = RepeatabilityStore(tmp_path)
    record_confirmation(store, key="c", label="t", tier=TIER, logs=[0, 0.1, -0.1], within=[0] * 3)
    data = store.read()
    data["ratios"][TIER]["confirmations"]["broken"] = {"label": "x", "logs": "oops"}
    data["ratios"][TIER]["workloads"]["half"] = {"label": "y", "logs": [0.1, 0.2]}
    store.write(data)
    learnt = ratio_term(store, TIER)
    assert learnt is not None and learnt.n == 3  # the readable confirmation alone
    assert single_span(paired(0.5), store=store).ratio_repeatability_rel == learnt.ci95_rel
