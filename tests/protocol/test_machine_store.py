"""The machine's repeatability store: one file, both kinds of term, one other-machine check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compresslab.errors import OtherMachineError
from compresslab.machine import fingerprint
from compresslab.protocol import machine_store, terms
from compresslab.protocol.machine_store import MachineStore
from compresslab.protocol.terms import (
    RATIO_UNKNOWN,
    UNKNOWN,
    RatioTerm,
    RepeatabilityTerm,
    Term,
    tier_of,
)

TIER = tier_of("cost", "measured")
OTHER = {"host": "elsewhere", "cpu_model": "Other CPU", "logical_cpus": "64"}
AT = 1e9


def fill(store: MachineStore) -> None:
    """Sources of both kinds under one tier."""
    store.record_study(key="db#s", label="study s", tier=TIER, cv=0.04, n=9, at=AT)
    for v in (1.0, 1.1, 0.9):
        store.record_measurement(key="m", label="model", tier=TIER, energy_j=v, at=AT)
    store.record_confirmation(
        key="db#s#3", label="trial 3", tier=TIER, logs=[0.0, 0.1, -0.1], within=[0.001] * 3, at=AT
    )
    for x in (0.0, 0.2, -0.1):
        store.record_paired(key="v", label="variant", tier=TIER, log_ratio=x, within=0.0, at=AT)


def test_one_file_holds_both_kinds_and_round_trips(tmp_path: Path) -> None:
    store = MachineStore(tmp_path)
    fill(store)
    assert list(tmp_path.iterdir()) == [store.path]  # one file for both kinds
    data = json.loads(store.path.read_text())
    assert set(data) == {"format", "machine", "tiers", "ratios"}
    assert set(data["tiers"][TIER]) == {"studies", "workloads"}
    assert set(data["ratios"][TIER]) == {"confirmations", "workloads"}
    assert data["tiers"][TIER]["workloads"]["m"]["values_j"] == [1.0, 1.1, 0.9]
    assert data["ratios"][TIER]["workloads"]["v"]["logs"] == [0.0, 0.2, -0.1]
    # Opened again, it gives the same terms of both kinds.
    again = MachineStore(tmp_path)
    absolute, ratio = again.term(TIER, now=AT), again.ratio_term(TIER, now=AT)
    assert isinstance(absolute, RepeatabilityTerm) and isinstance(ratio, RatioTerm)
    assert absolute == store.term(TIER, now=AT) and ratio == store.ratio_term(TIER, now=AT)
    assert (absolute.n, ratio.n) == (12, 6)
    assert (absolute.kind, ratio.kind) == ("absolute", "ratio")
    # Written back unchanged: reading and writing keep the layout.
    again.write(again.read())
    assert json.loads(store.path.read_text()) == data


def test_a_file_written_before_the_store_was_one_class_still_loads(tmp_path: Path) -> None:
    store = MachineStore(tmp_path)
    old = {
        "format": 1,
        "machine": fingerprint(),
        "tiers": {TIER: {"studies": {"x": {"label": "s", "cv": 0.1, "n": 5, "at": AT}}}},
        "ratios": {
            TIER: {"confirmations": {"c": {"label": "t", "logs": [0, 1, 2], "within": [0] * 3}}}
        },
    }
    old["ratios"][TIER]["confirmations"]["c"]["at"] = AT
    store.path.write_text(json.dumps(old))
    assert store.term(TIER, now=AT).n == 5  # type: ignore[union-attr]
    assert store.ratio_term(TIER, now=AT).n == 3  # type: ignore[union-attr]
    store.record_measurement(key="m", label="model", tier=TIER, energy_j=1.0, at=AT)
    data = json.loads(store.path.read_text())
    assert data["tiers"][TIER]["workloads"]["m"]["values_j"] == [1.0]
    assert data["ratios"] == old["ratios"]  # the other kind is kept as it was


def foreign_file(store: MachineStore) -> dict[str, object]:
    """Another machine's sources of both kinds, written at this machine's path."""
    donor = MachineStore(store.directory / "donor", here=OTHER)
    fill(donor)
    data = json.loads(donor.path.read_text())
    store.path.parent.mkdir(parents=True, exist_ok=True)
    store.path.write_text(json.dumps(data))
    return data


def test_a_file_of_another_machine_is_refused_for_both_kinds(tmp_path: Path) -> None:
    store = MachineStore(tmp_path)
    foreign = foreign_file(store)
    assert store.term(TIER, now=AT) is None and store.ratio_term(TIER, now=AT) is None
    fill(store)  # nothing of either kind is mixed into it
    assert json.loads(store.path.read_text()) == foreign
    for unknown in (UNKNOWN, RATIO_UNKNOWN):
        said = store.why_unknown(unknown)
        assert said.startswith(unknown)
        assert "another machine's figures, elsewhere (Other CPU, 64 CPUs)" in said


def test_one_check_decides_whose_file_it_is_for_both_kinds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = MachineStore(tmp_path)
    foreign_file(store)
    calls: list[str] = []

    def same(machine: dict[str, str], here: dict[str, str]) -> None:
        calls.append(machine["host"])
        return None

    # With the one check saying "the same machine", both kinds read the file.
    monkeypatch.setattr(machine_store, "other_machine", same)
    assert store.term(TIER, now=AT) is not None
    assert store.ratio_term(TIER, now=AT) is not None
    assert calls == ["elsewhere", "elsewhere"]


@pytest.mark.parametrize(
    "term",
    [
        RepeatabilityTerm(cv=0.05, n=8, dof=7, ci95_rel=0.1, tier=TIER, machine=OTHER, source="s"),
        RatioTerm(tau=0.05, n=8, dof=7, ci95_rel=0.1, tier=TIER, machine=OTHER, source="s"),
    ],
)
def test_a_term_of_another_machine_is_refused_by_the_same_check(
    term: Term, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(OtherMachineError, match=f"the {term.what} was measured on elsewhere"):
        term.source_for(TIER, here=fingerprint(), allow_other_machine=False)
    monkeypatch.setattr(terms, "other_machine", lambda machine, here: None)
    assert term.source_for(TIER, here=fingerprint(), allow_other_machine=False) == "s"
    with pytest.raises(ValueError, match=f"a {term.what} of {TIER} cannot widen"):
        term.source_for("rapl/measured", here=fingerprint(), allow_other_machine=False)
