"""The machine's measured repeatability widens a standalone absolute figure's interval."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest
from protocol_fakes import CostSampler

from compresslab.errors import OtherMachineError
from compresslab.machine import fingerprint, machine_id
from compresslab.protocol import EnergyResult, Protocol, measure_callable
from compresslab.protocol.repeatability import (
    MAX_AGE_S,
    UNKNOWN,
    RepeatabilityStore,
    RepeatabilityTerm,
    pooled,
    standalone,
    tier_of,
    widen,
)
from compresslab.stats import cv, t95

FAST = Protocol(warmup_s=0.0, window_s=0.005, min_windows=3, max_windows=3, idle_s=0.0)
OTHER = {"host": "elsewhere", "cpu_model": "Other CPU", "logical_cpus": "64"}


def measured(level_j: float) -> EnergyResult:
    """One measurement of a workload whose cost is ``level_j`` per inference, steady within it."""
    sampler = CostSampler()
    return measure_callable(
        sampler.workload("A", level_j), sampler=sampler, inferences_per_call=1, protocol=FAST
    )


def test_a_new_machine_says_its_interval_covers_the_windows_only(tmp_path: Path) -> None:
    res = standalone(measured(0.5), key="k", label="the model", store=RepeatabilityStore(tmp_path))
    assert res.repeatability_source == UNKNOWN
    assert "windows only" in UNKNOWN and "measure again" in UNKNOWN
    assert res.repeatability_rel is None
    assert res.ci95_j_per_inference == res.ci95_windows_j_per_inference


def test_repeated_measurements_teach_the_spread_and_widen_the_next_in_quadrature(
    tmp_path: Path,
) -> None:
    # Steady windows (their interval is 0) but a level that drifts between measurements, as
    # the load of a shared machine does between measurements minutes apart.
    store = RepeatabilityStore(tmp_path)
    levels = [0.50, 0.54, 0.58]
    for level in levels:
        first = standalone(measured(level), key="k", label="digits: baseline", store=store)
        assert first.repeatability_source == UNKNOWN  # fewer than three before it
    res = standalone(measured(0.52), key="k", label="digits: baseline", store=store)
    spread = cv(levels)
    rel = t95(2) * spread * math.sqrt(1 + 1 / 3)
    assert res.repeatability_rel == pytest.approx(rel)
    assert res.ci95_windows_j_per_inference == pytest.approx(0.0, abs=1e-12)
    assert res.ci95_j_per_inference == pytest.approx(math.hypot(0.0, rel * 0.52))
    assert res.energy_j_per_inference - res.ci95_j_per_inference < 0.50  # covers the others
    assert res.energy_j_per_inference + res.ci95_j_per_inference > 0.58
    source = res.repeatability_source or ""
    assert "3 standalone measurements of digits: baseline" in source
    assert "on this machine" in source and tier_of("cost", "measured") in source
    # A figure never vouches for itself: the fourth joined the history only afterwards.
    assert store.term(tier_of("cost", "measured")).n == 4  # type: ignore[union-attr]


def test_windows_and_repeatability_add_in_quadrature(tmp_path: Path) -> None:
    sampler = CostSampler(window_factor=lambda w: [1.0, 1.1, 0.9][(w - 1) % 3])
    res = measure_callable(
        sampler.workload("A", 0.5, scaled=True),
        sampler=sampler,
        inferences_per_call=1,
        protocol=FAST,
    )
    windows = res.ci95_j_per_inference
    assert windows > 0 and res.ci95_windows_j_per_inference == windows
    term = RepeatabilityTerm(
        cv=0.05, n=8, dof=7, ci95_rel=0.12, tier="cost/measured", machine=fingerprint(), source="s"
    )
    wide = widen(res, term)
    assert wide.ci95_j_per_inference == pytest.approx(
        math.sqrt(windows**2 + (0.12 * res.energy_j_per_inference) ** 2)
    )
    assert wide.ci95_windows_j_per_inference == windows
    assert (wide.repeatability_rel, wide.repeatability_source) == (0.12, "s")
    assert wide.energy_j_per_inference == res.energy_j_per_inference
    # A term of another tier (a RAPL term for an estimate) is refused.
    with pytest.raises(ValueError, match="cannot widen"):
        widen(res, RepeatabilityTerm(**{**term.to_dict(), "tier": "rapl/measured"}))


def test_a_study_feeds_the_store_and_pools_with_a_history(tmp_path: Path) -> None:
    store = RepeatabilityStore(tmp_path)
    tier = tier_of("estimate", "estimated")
    store.record_study(key="db#digits", label="study digits", tier=tier, cv=0.04, n=12, at=1e9)
    for v in (1.0, 1.1, 0.9):
        store.record_measurement(key="m", label="digits: baseline", tier=tier, energy_j=v, at=1e9)
    term = store.term(tier, now=1e9 + 60)
    assert term is not None
    expected = math.sqrt((11 * 0.04**2 + 2 * cv([1.0, 1.1, 0.9]) ** 2) / 13)
    assert term.cv == pytest.approx(expected) and (term.n, term.dof) == (15, 13)
    assert term.ci95_rel == pytest.approx(t95(13) * expected * math.sqrt(1 + 1 / 15))
    assert "12 baseline measurements of study digits, 2001-09-09" in term.source
    assert "3 standalone measurements of digits: baseline" in term.source
    # Another tier knows nothing; old sources are not used.
    assert store.term(tier_of("rapl", "measured"), now=1e9) is None
    assert store.term(tier, now=1e9 + MAX_AGE_S + 1) is None
    # The same study again replaces its entry.
    store.record_study(key="db#digits", label="study digits", tier=tier, cv=0.02, n=20, at=1e9)
    assert store.term(tier, now=1e9).n == 23  # type: ignore[union-attr]


def test_pooling_needs_three_measurements_per_source() -> None:
    sources = [{"cv": 0.3, "n": 2, "what": "two", "at": 0.0}]
    assert pooled(sources, tier="t", machine=fingerprint()) is None


def test_another_machines_term_is_refused_unless_asked(caplog: pytest.LogCaptureFixture) -> None:
    res = measured(0.5)
    term = RepeatabilityTerm(
        cv=0.05, n=8, dof=7, ci95_rel=0.1, tier="cost/measured", machine=OTHER, source="there"
    )
    with pytest.raises(OtherMachineError, match="elsewhere .*not on this machine"):
        widen(res, term)
    with caplog.at_level(logging.WARNING):
        wide = widen(res, term, allow_other_machine=True)
    assert "elsewhere" in caplog.text
    assert (wide.repeatability_source or "").startswith("ANOTHER MACHINE")


def test_a_store_file_of_another_machine_is_never_used_nor_overwritten(tmp_path: Path) -> None:
    store = RepeatabilityStore(tmp_path)
    tier = tier_of("cost", "measured")
    # Another machine's figures, at this machine's path (a copied cache, a shared folder).
    foreign = {"format": 1, "machine": OTHER, "tiers": {tier: {"studies": {}, "workloads": {}}}}
    foreign["tiers"][tier]["studies"]["x"] = {"label": "s", "cv": 0.1, "n": 9, "at": 4e9}
    store.path.write_text(json.dumps(foreign))
    assert store.path.name == f"{machine_id()}.json"
    res = standalone(measured(0.5), key="k", label="m", store=store)
    assert res.repeatability_rel is None
    assert (res.repeatability_source or "").startswith(UNKNOWN)
    assert "another machine's figures, elsewhere (Other CPU, 64 CPUs)" in (
        res.repeatability_source or ""
    )
    assert json.loads(store.path.read_text()) == foreign  # untouched


def test_the_fields_are_in_the_json_form(tmp_path: Path) -> None:
    res = standalone(measured(0.5), key="k", label="m", store=RepeatabilityStore(tmp_path))
    d = res.to_dict()
    assert d["ci95_windows_j_per_inference"] == d["ci95_j_per_inference"]
    assert d["repeatability_rel"] is None and d["repeatability_source"] == UNKNOWN
    json.dumps(d)
