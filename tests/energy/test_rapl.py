from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from compresslab.energy import Provenance, make_sampler, rapl_counter, rapl_tree
from compresslab.energy.base import CounterFaultError
from compresslab.energy.rapl import RaplSampler, default_poll_interval_s
from compresslab.errors import (
    BackendUnavailableError,
    CompressLabError,
    MeasurementError,
    RecipeError,
)

if TYPE_CHECKING:
    from conftest import ClockCounters, PowercapTree, SimulatedClock


def _energies(reading) -> dict[str, float]:
    return {c.component: c.energy_j for c in reading.components}


def _unreadable(monkeypatch: pytest.MonkeyPatch, *paths: Path) -> None:
    """Make some files raise PermissionError, as energy_uj does for non-root since Linux 5.10.

    chmod 000 cannot be used: these tests may run as root, and root reads anything.
    """
    real = rapl_tree.read_uj
    blocked = set(paths)

    def read(path: Path) -> int:
        if path in blocked:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(rapl_tree, "read_uj", read)


# --- discovery --------------------------------------------------------------------------------


def test_default_counts_the_package_once_and_never_core_uncore_or_mmio(
    intel_tree: PowercapTree,
) -> None:
    sampler = RaplSampler(root=intel_tree.root)
    assert sampler.available()
    sampler.start()
    intel_tree.advance("intel-rapl:0", 2_000_000)
    intel_tree.advance("intel-rapl-mmio:0", 2_000_000)  # the same energy, read through MMIO
    intel_tree.advance("intel-rapl:0:0", 1_500_000)  # core: inside the package
    intel_tree.advance("intel-rapl:0:1", 100_000)  # uncore: inside the package
    intel_tree.advance("intel-rapl:0:2", 900_000)  # dram: not requested
    reading = sampler.stop()
    assert _energies(reading) == {"cpu-package-0": pytest.approx(2.0)}
    assert reading.energy_j == pytest.approx(2.0)
    assert reading.provenance is Provenance.MEASURED
    assert str(intel_tree.path("intel-rapl:0")) in sampler.metadata()["zones"]
    assert "mmio" not in sampler.metadata()["zones"]


def test_dram_is_counted_only_on_request(intel_tree: PowercapTree) -> None:
    sampler = RaplSampler(root=intel_tree.root, domains=("package", "dram"))
    sampler.start()
    intel_tree.advance("intel-rapl:0", 3_000_000)
    intel_tree.advance("intel-rapl:0:2", 500_000)
    reading = sampler.stop()
    assert _energies(reading) == {
        "cpu-package-0": pytest.approx(3.0),
        "dram-0": pytest.approx(0.5),
    }
    assert all(c.provenance is Provenance.MEASURED for c in reading.components)


def test_two_sockets_each_counted_and_dram_named_after_its_package(
    powercap: PowercapTree,
) -> None:
    powercap.add_zone("intel-rapl:0", "package-0")
    powercap.add_zone("intel-rapl:1", "package-1")
    powercap.add_zone("intel-rapl:1:0", "dram")
    powercap.add_zone("intel-rapl:0:0", "dram")
    sampler = RaplSampler(root=powercap.root, domains=("package", "dram"))
    sampler.start()
    powercap.advance("intel-rapl:0", 1_000_000)
    powercap.advance("intel-rapl:1", 2_000_000)
    powercap.advance("intel-rapl:1:0", 250_000)
    powercap.advance("intel-rapl:0:0", 125_000)
    reading = sampler.stop()
    assert [c.component for c in reading.components] == [
        "cpu-package-0",
        "cpu-package-1",
        "dram-0",
        "dram-1",
    ]
    assert _energies(reading) == {
        "cpu-package-0": pytest.approx(1.0),
        "cpu-package-1": pytest.approx(2.0),
        "dram-0": pytest.approx(0.125),
        "dram-1": pytest.approx(0.25),
    }


@pytest.mark.slow
def test_multi_die_packages_count_every_die_in_numeric_order(powercap: PowercapTree) -> None:
    # Multi-die parts name one zone per die; more than ten of them must sort as numbers.
    for zone in range(22):
        powercap.add_zone(f"intel-rapl:{zone}", f"package-{zone // 2}-die-{zone % 2}")
    sampler = RaplSampler(root=powercap.root)
    sampler.start()
    for zone in range(22):
        powercap.advance(f"intel-rapl:{zone}", 1_000_000 * (zone + 1))
    reading = sampler.stop()
    names = [c.component for c in reading.components]
    assert names[:3] == ["cpu-package-0-die-0", "cpu-package-0-die-1", "cpu-package-1-die-0"]
    assert names[-1] == "cpu-package-10-die-1"
    assert reading.energy_j == pytest.approx(sum(range(1, 23)))


def test_nested_layout_of_sys_devices_virtual_powercap_is_found(powercap: PowercapTree) -> None:
    powercap.add_control_type("intel-rapl")
    powercap.add_zone("intel-rapl:0", "package-0", inside="intel-rapl")
    powercap.add_zone("intel-rapl:0:0", "dram", inside="intel-rapl:0")
    powercap.add_zone("intel-rapl:0:1", "core", inside="intel-rapl:0")
    sampler = RaplSampler(root=powercap.root, domains=("package", "dram"))
    sampler.start()
    powercap.advance("intel-rapl:0", 4_000_000)
    powercap.advance("intel-rapl:0:0", 1_000_000)
    powercap.advance("intel-rapl:0:1", 3_000_000)
    assert _energies(sampler.stop()) == {
        "cpu-package-0": pytest.approx(4.0),
        "dram-0": pytest.approx(1.0),
    }


def test_mmio_duplicate_is_used_when_the_msr_zone_is_unreadable(
    intel_tree: PowercapTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    _unreadable(monkeypatch, intel_tree.energy_path("intel-rapl:0"))
    sampler = RaplSampler(root=intel_tree.root)
    avail = sampler.available()
    assert avail, avail.reason
    assert "intel-rapl-mmio:0" in avail.reason
    sampler.start()
    intel_tree.advance("intel-rapl-mmio:0", 1_250_000)
    assert _energies(sampler.stop()) == {"cpu-package-0": pytest.approx(1.25)}


def test_mmio_zone_alone_is_used(powercap: PowercapTree) -> None:
    powercap.add_zone("intel-rapl-mmio:0", "package-0")
    sampler = RaplSampler(root=powercap.root)
    sampler.start()
    powercap.advance("intel-rapl-mmio:0", 750_000)
    assert _energies(sampler.stop()) == {"cpu-package-0": pytest.approx(0.75)}


def test_psys_alone_is_counted_instead_of_the_package(powercap: PowercapTree) -> None:
    powercap.add_zone("intel-rapl:0", "package-0")
    powercap.add_zone("intel-rapl:1", "psys")
    only_package = RaplSampler(root=powercap.root)
    only_package.start()
    powercap.advance("intel-rapl:0", 1_000_000)
    powercap.advance("intel-rapl:1", 3_000_000)
    assert _energies(only_package.stop()) == {"cpu-package-0": pytest.approx(1.0)}

    psys = RaplSampler(root=powercap.root, domains=["psys"])
    assert psys.available(), psys.available().reason
    psys.start()
    powercap.advance("intel-rapl:0", 1_000_000)  # inside psys: not added
    powercap.advance("intel-rapl:1", 3_000_000)
    assert _energies(psys.stop()) == {"psys": pytest.approx(3.0)}
    assert "whole SoC" in psys.metadata()["covers"]


@pytest.mark.parametrize(
    "domains", [("package", "psys"), ("psys", "dram"), ("package", "dram", "psys")]
)
def test_psys_with_the_package_or_dram_is_refused(domains: tuple[str, ...], tmp_path: Path) -> None:
    """Finding: psys was added on top of the package it contains (51 W read for 31 W)."""
    with pytest.raises(RecipeError, match="psys") as info:
        RaplSampler(root=tmp_path, domains=domains)
    message = str(info.value)
    assert "energy.rapl.domains" in message
    assert "covers the whole SoC" in message and "twice" in message


def test_root_from_environment_and_from_the_registry(powercap_env: PowercapTree) -> None:
    for sampler in (
        RaplSampler(),
        make_sampler("rapl"),
        make_sampler("rapl", {"domains": ["package", "dram"]}),
    ):
        assert sampler.available(), sampler.available().reason
        assert str(powercap_env.root) in sampler.metadata()["powercap_root"]
    explicit = RaplSampler(root=powercap_env.root / "elsewhere")
    assert not explicit.available()


def test_host_rapl_is_hidden_unless_a_test_asks_for_a_fake_tree(
    hidden_rapl: Path, monkeypatch: pytest.MonkeyPatch, intel_tree: PowercapTree
) -> None:
    assert hidden_rapl != rapl_tree.DEFAULT_ROOT and not any(hidden_rapl.iterdir())
    for sampler in (RaplSampler(), make_sampler("rapl")):
        avail = sampler.available()
        assert not avail
        assert f"no RAPL package zone (intel-rapl:N named package-N) under {hidden_rapl}" in (
            avail.reason
        )
    monkeypatch.setenv(rapl_tree.ROOT_ENV, str(intel_tree.root))  # what powercap_env does
    assert RaplSampler().available(), RaplSampler().available().reason


# --- windows and wraparound -------------------------------------------------------------------


def test_window_reads_the_counter_difference(intel_tree: PowercapTree) -> None:
    sampler = RaplSampler(root=intel_tree.root, poll_interval_s=0.01)
    sampler.start()
    intel_tree.advance("intel-rapl:0", 12_345_678)
    reading = sampler.stop()
    assert reading.energy_j == pytest.approx(12.345678)
    assert reading.duration_s > 0
    assert reading.details["polls"] >= 1  # at least the final read at stop()
    assert reading.details["wraps"] == 0


def test_one_wrap_is_added_back(powercap: PowercapTree) -> None:
    range_uj = 1_000_000_000
    powercap.add_zone(
        "intel-rapl:0", "package-0", energy_uj=range_uj - 200_000, max_energy_range_uj=range_uj
    )
    sampler = RaplSampler(root=powercap.root)
    sampler.start()
    powercap.advance("intel-rapl:0", 500_000)
    assert powercap.get("intel-rapl:0") == 300_000  # the fake really wrapped
    reading = sampler.stop()
    assert reading.energy_j == pytest.approx(0.5)
    assert reading.details["wraps"] == 1


@pytest.mark.slow
def test_several_wraps_in_one_window_are_all_counted(
    powercap: PowercapTree, clock_counters: ClockCounters
) -> None:
    """A 50 J counter at 400 W wraps every 125 ms: a window of 0.6 s holds about 5 wraps.

    A reader that added the range once per window, or trusted a negative difference, would be
    far off; the default poll interval (50 J / 1000 W / 16 = 3 ms) sees every wrap.
    """
    powercap.add_zone("intel-rapl:0", "package-0", max_energy_range_uj=50_000_000)
    clock_counters.attach(powercap, "intel-rapl:0", power_w=400.0, start_uj=49_000_000)
    sampler = RaplSampler(root=powercap.root)
    assert sampler.effective_poll_interval_s() == pytest.approx(0.003125)
    reading = _window_retrying_late_polls(sampler, 0.6)
    assert reading.energy_j / reading.duration_s == pytest.approx(400.0, rel=0.02)
    assert reading.details["wraps"] >= 4


def _window_retrying_late_polls(sampler: RaplSampler, seconds: float, tries: int = 4):
    """One window of ``seconds``; a window the poll thread was starved in is measured again.

    That is what the protocol does (a late poll is a :class:`CounterFaultError`); a loaded
    test machine can starve the thread for a few milliseconds.
    """
    for attempt in range(tries):
        sampler.start()
        time.sleep(seconds)
        try:
            return sampler.stop()
        except CounterFaultError as e:
            if "late" not in e.reason or attempt == tries - 1:
                raise
    raise AssertionError("unreachable")


def test_accumulator_counts_every_wrap_when_polled_between_them(
    powercap: PowercapTree, simulated_clock: SimulatedClock
) -> None:
    range_uj = 1_000_000
    powercap.add_zone("intel-rapl:0", "package-0", energy_uj=0, max_energy_range_uj=range_uj)
    # 1 J at up to 1 kW wraps every millisecond: the sampler refuses it. A zone that draws at
    # most 200 W wraps at most every 5 ms; polled between wraps (here by hand), every one counts.
    assert not RaplSampler(root=powercap.root).available()
    assert RaplSampler(root=powercap.root, max_power_w=200.0).available()
    zones = rapl_tree.discover(powercap.root, ("package",), max_power_w=200.0).zones
    acc = rapl_counter.Accumulator(zones, update_period_s=0.001)
    for _ in range(10):
        simulated_clock.advance(0.003)  # 0.4 J in 3 ms: 133 W
        powercap.set("intel-rapl:0", (powercap.get("intel-rapl:0") + 400_000) % range_uj)
        acc.poll()
    assert acc.total_uj == [4_000_000]
    assert acc.wraps == 4  # 4.0 ranges in all, the last one landing exactly on 0
    assert acc.polls == 10


@pytest.mark.parametrize(
    ("range_uj", "interval_s"),
    [
        (262_143_328_850, 0.1),  # the usual 262 kJ: at most 0.1 s, so resets are seen
        (800_000_000, 0.05),  # 800 J / 1000 W / 16
        (20_000_000, 0.00125),  # 20 J / 1000 W / 16 (a floor of 10 ms missed wraps)
        (2_000_000, 0.001),  # 2 J at 1 kW: 1 ms, the fastest a thread polls (half a wrap)
    ],
)
def test_default_poll_interval(range_uj: int, interval_s: float) -> None:
    assert default_poll_interval_s(range_uj) == pytest.approx(interval_s)
    # A zone stating a lower maximum power can be polled more slowly.
    slower = min(0.1, max(0.001, range_uj / 1e6 / 100.0 / 16))
    assert default_poll_interval_s(range_uj, 100.0) == pytest.approx(slower)


def test_default_poll_interval_follows_the_smallest_range(powercap: PowercapTree) -> None:
    powercap.add_zone("intel-rapl:0", "package-0")
    powercap.add_zone("intel-rapl:0:0", "dram", max_energy_range_uj=800_000_000)
    sampler = RaplSampler(root=powercap.root, domains=("package", "dram"))
    assert sampler.effective_poll_interval_s() == pytest.approx(0.05)  # 800 J / 1 kW / 16
    assert RaplSampler(root=powercap.root, poll_interval_s=0.3).effective_poll_interval_s() == 0.3


def test_counter_that_does_not_advance_is_an_error_not_a_zero(intel_tree: PowercapTree) -> None:
    sampler = RaplSampler(root=intel_tree.root)
    sampler.start()
    with pytest.raises(MeasurementError, match="0 J"):
        sampler.stop()


def test_counter_that_vanishes_mid_window_names_its_path(intel_tree: PowercapTree) -> None:
    sampler = RaplSampler(root=intel_tree.root, poll_interval_s=0.01)
    sampler.start()
    shutil.rmtree(intel_tree.path("intel-rapl:0"))
    with pytest.raises(MeasurementError, match="intel-rapl:0/energy_uj"):
        sampler.stop()
    # The window is closed cleanly, and the next one falls back to the MMIO duplicate.
    with pytest.raises(MeasurementError, match="before it was started"):
        sampler.stop()
    assert "intel-rapl-mmio:0" in sampler.available().reason
    sampler.start()
    intel_tree.advance("intel-rapl-mmio:0", 1_000_000)
    assert _energies(sampler.stop()) == {"cpu-package-0": pytest.approx(1.0)}


def test_counter_that_becomes_unreadable_mid_window(
    intel_tree: PowercapTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    sampler = RaplSampler(root=intel_tree.root, poll_interval_s=5.0)
    sampler.start()
    _unreadable(monkeypatch, intel_tree.energy_path("intel-rapl:0"))
    with pytest.raises(MeasurementError, match="chmod a\\+r"):
        sampler.stop()


# --- availability -----------------------------------------------------------------------------


def test_unreadable_counter_says_how_to_fix_it(
    intel_tree: PowercapTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    _unreadable(
        monkeypatch,
        intel_tree.energy_path("intel-rapl:0"),
        intel_tree.energy_path("intel-rapl-mmio:0"),
    )
    sampler = RaplSampler(root=intel_tree.root)
    avail = sampler.available()
    assert not avail
    for fix in ("root", "5.10", "CVE-2020-8694", "chmod a+r", "udev", "sampler: estimate"):
        assert fix in avail.reason
    with pytest.raises(BackendUnavailableError, match="chmod a\\+r"):
        sampler.start()


def test_energy_file_that_cannot_be_read_at_all(powercap: PowercapTree) -> None:
    path = powercap.add_zone("intel-rapl:0", "package-0")
    (path / "energy_uj").unlink()
    (path / "energy_uj").mkdir()  # reading it raises IsADirectoryError
    avail = RaplSampler(root=powercap.root).available()
    assert not avail
    assert "cannot read" in avail.reason
    assert str(path / "energy_uj") in avail.reason


def test_missing_root(tmp_path: Path) -> None:
    sampler = RaplSampler(root=tmp_path / "no-such-dir")
    avail = sampler.available()
    assert not avail
    assert "no powercap tree" in avail.reason
    assert "COMPRESSLAB_POWERCAP_ROOT" in avail.reason
    assert "sampler: estimate" in avail.reason
    with pytest.raises(BackendUnavailableError, match="no powercap tree"):
        sampler.start()
    assert sampler.metadata()["zones"].startswith("none")


def test_tree_without_a_package_zone(powercap: PowercapTree) -> None:
    powercap.add_zone("intel-rapl:1", "psys")
    powercap.add_zone("intel-rapl:1:0", "core")
    avail = RaplSampler(root=powercap.root).available()
    assert not avail
    assert "no RAPL package zone" in avail.reason


def test_requested_domain_that_is_missing(powercap: PowercapTree) -> None:
    powercap.add_zone("intel-rapl:0", "package-0")
    powercap.add_zone("intel-rapl:0:0", "core")
    for domains in (("package", "dram"), ("psys",)):
        domain = domains[-1]
        avail = RaplSampler(root=powercap.root, domains=domains).available()
        assert not avail
        assert f"'{domain}'" in avail.reason
        assert "energy.rapl.domains" in avail.reason


# --- arguments and lifecycle ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"domains": ("core",)}, "inside the package"),
        ({"domains": ("uncore", "package")}, "inside the package"),
        ({"domains": ("gpu",)}, "use some of package, dram, psys"),
        ({"domains": ()}, "non-empty"),
        ({"domains": ("package", "package")}, "repeats"),
        ({"domains": ("dram",)}, "without the CPU package"),
        ({"max_power_w": -5.0}, "positive"),
        ({"poll_interval_s": 0}, "positive"),
        ({"poll_interval_s": float("nan")}, "positive"),
    ],
)
def test_bad_arguments_are_recipe_errors(kwargs: dict, match: str, tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=match) as info:
        RaplSampler(root=tmp_path, **kwargs)
    assert isinstance(info.value, CompressLabError)
    assert "energy.rapl." in str(info.value)


def test_start_twice_and_stop_without_start(intel_tree: PowercapTree) -> None:
    sampler = RaplSampler(root=intel_tree.root)
    with pytest.raises(MeasurementError, match="before it was started"):
        sampler.stop()
    sampler.start()
    with pytest.raises(MeasurementError, match="started twice"):
        sampler.start()
    intel_tree.advance("intel-rapl:0", 1_000)
    assert sampler.stop().energy_j == pytest.approx(0.001)


def test_poll_thread_is_joined_at_stop(intel_tree: PowercapTree) -> None:
    before = {t.name for t in threading.enumerate()}
    sampler = RaplSampler(root=intel_tree.root, poll_interval_s=0.01)
    sampler.start()
    assert any(t.name == "compresslab-rapl" for t in threading.enumerate())
    intel_tree.advance("intel-rapl:0", 1_000)
    sampler.stop()
    assert {t.name for t in threading.enumerate()} == before


def test_metadata_says_what_is_covered(intel_tree: PowercapTree) -> None:
    meta = RaplSampler(root=intel_tree.root, domains=("package", "dram")).metadata()
    assert meta["cpu_model"]
    assert "CPU package(s)" in meta["covers"]
    assert "not only this process" in meta["covers"]
    assert "15.3" in meta["counter_resolution"]
    assert "cpu-package-0=" in meta["zones"]
    assert "dram-0=" in meta["zones"]
    assert str(intel_tree.path("intel-rapl:0:2")) in meta["zones"]
    assert meta["poll_interval_s"] == "0.1"
    assert RaplSampler(root=intel_tree.root).update_period_s() == pytest.approx(0.001)
