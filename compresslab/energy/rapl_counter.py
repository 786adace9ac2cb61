"""Reading RAPL counters over a window: wraps, resets, torn reads, late polls, frozen counters.

Every ``energy_uj`` counter runs from 0 to ``max_energy_range_uj`` and wraps. Between two reads
``gap`` seconds apart, a zone that draws at most ``P`` watts (:func:`.rapl_tree.zone_max_power`)
can have gained at most ``P x (gap + update period)`` joules. That bound decides each step:

- **wrap**: the counter went back, and ``difference + range`` fits under the bound: one wrap,
  counted.
- **reset or torn read**: the energy the step implies (with a wrap if the counter went back)
  is *above* the bound: the counter was reset (a CPU reset, a driver reload, a firmware bug)
  or a read was torn. Counting it as a wrap adds a whole range (a reset every 2 s read +50 to
  +96%). The window is rejected with :class:`~compresslab.energy.base.CounterFaultError`,
  which the protocol repeats.
- **late poll**: ``difference + range`` would *also* fit under the bound: a whole wrap could
  have passed unseen between the reads (the poll thread was starved). The window is rejected
  the same way. The poll interval is sized so this does not happen (:func:`safe_poll_interval_s`);
  the check proves it did not.

A counter that went back is a wrap only if the energy to the top of the range and on from 0
fits under that bound; otherwise it was reset. Within the bound the maximum power alone cannot
tell them apart: the *blind zone*, where a reset reads like a wrap, is the top
``P x (gap + 2 update periods)`` of the range (with a 20 J range, no constraint file, hence the
1000 W ceiling, and 1.25 ms polls: 3.25 J, 16% of the range; with the common 262 kJ range and
0.1 s polls: 0.04%). There the zone's *observed* power decides: a wrap needs the energy from
the last reading to the top of the range (``range - last``) to be at most
:data:`WRAP_POWER_SWING` times the window's average power so far over ``gap + 2 update
periods``; a step that needs more is rejected as "reset or wrap, cannot tell"
(:class:`~compresslab.energy.base.CounterFaultError`, repeated like any fault). A reset that
still passes (one within that much of the top) adds at most that much energy: about
``WRAP_POWER_SWING x (gap + 2 update periods)`` seconds' worth of the window's power, 0.65%
of a 1 s window at 1.25 ms polls. A reset is not seen at all if the counter climbs back above
its previous reading before the next one, which needs two resets within one poll interval
(0.1 s at most).

A counter that does not change for many update periods is frozen (:func:`probe_counters` before
use, and at the end of every window).
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from compresslab.energy import rapl_tree
from compresslab.energy.base import CounterFaultError
from compresslab.energy.rapl_tree import PERMISSION_FIX, Zone
from compresslab.errors import MeasurementError
from compresslab.units import uj_to_j

#: RAPL updates its counters about every millisecond.
RAPL_UPDATE_PERIOD_S = 0.001
#: Polls per fastest possible wrap, at least: no interval can then see two wraps.
POLLS_PER_WRAP = 4.0
#: Polls per fastest wrap where a thread can keep up: the blind zone, where only the observed
#: power tells a reset from a wrap, is then ``max power x (interval + 2 update periods)``.
POLLS_PER_WRAP_PREFERRED = 16.0
#: How much more than the window's average power a zone may draw just before a wrap: a counter
#: that went back is counted as a wrap only if the energy to the top of its range fits under
#: this many times the observed power over the gap (and two update periods); more is rejected
#: as a possible reset.
WRAP_POWER_SWING = 2.0
#: The shortest interval a Python poll thread sustains; a counter that needs faster polling
#: cannot be counted safely.
MIN_POLL_INTERVAL_S = 0.001
#: A reset goes unseen only if the counter climbs back above its value at the previous read
#: before the next one, i.e. if two resets come within one interval: polling at least every
#: 0.1 s catches any counter that resets less often than that (a few reads of small files).
MAX_POLL_INTERVAL_S = 0.1
#: A counter that changes less often than this is not a RAPL counter as documented (about
#: every millisecond): an emulated or throttled one, too coarse for windows of seconds.
MAX_UPDATE_PERIOD_S = 0.05
#: How long :func:`probe_counters` waits for a counter to move before calling it frozen.
FROZEN_AFTER_S = 2.0
#: A window at least this long (and 50 update periods) in which a counter did not move
#: means the counter froze.
FROZEN_WINDOW_S = 0.25

#: The clock every read is stamped with (tests replace it with a simulated one).
_now = time.perf_counter


def safe_poll_interval_s(zones: tuple[Zone, ...]) -> float:
    """The poll interval that cannot miss a wrap of any of ``zones``.

    A sixteenth of the fastest wrap (range / maximum power), but not under
    :data:`MIN_POLL_INTERVAL_S` and not over :data:`MAX_POLL_INTERVAL_S`. With the common
    range of about 262 kJ this is 0.1 s; with a 0.5 J range at 120 W, 1 ms. It is safe when it is at
    most a quarter of the fastest wrap (:data:`POLLS_PER_WRAP`); :func:`poll_problem` says
    when it is not.
    """
    fastest_s = min(z.fastest_wrap_s for z in zones)
    preferred_s = fastest_s / POLLS_PER_WRAP_PREFERRED
    return min(MAX_POLL_INTERVAL_S, max(MIN_POLL_INTERVAL_S, preferred_s))


def poll_problem(zones: tuple[Zone, ...], requested_s: float | None) -> str | None:
    """Why ``zones`` cannot be polled safely at ``requested_s`` (or the safe interval)."""
    fastest = min(zones, key=lambda z: z.fastest_wrap_s)
    needed_s = fastest.fastest_wrap_s / POLLS_PER_WRAP
    wraps = (
        f"{fastest.component}'s counter wraps after {fastest.range_j:g} J, i.e. every "
        f"{fastest.fastest_wrap_s * 1000:.3g} ms at its maximum {fastest.max_power_w:g} W "
        f"({fastest.max_power_source})"
    )
    if needed_s < MIN_POLL_INTERVAL_S:
        return (
            f"{wraps}: seeing every wrap needs a read every {needed_s * 1000:.3g} ms, faster than "
            f"a poll thread sustains ({MIN_POLL_INTERVAL_S * 1000:g} ms), so wraps would be "
            "missed; if this zone never draws that much, set `energy.rapl.max_power_w`, "
            "else use `sampler: estimate`"
        )
    if requested_s is not None and requested_s > fastest.fastest_wrap_s / 2:
        return (
            f"`energy.rapl.poll_interval_s` {requested_s:g} s could miss wraps: {wraps}; leave "
            f"it out (the safe default here is {safe_poll_interval_s(zones):.3g} s)"
        )
    return None


@dataclass
class _ZoneState:
    zone: Zone
    last_uj: int
    #: The clock just *before* the last read: the read's value is from no earlier than this.
    last_s: float
    #: The clock before the window's first read: the average power so far is over this span.
    first_s: float = 0.0
    total_uj: int = 0
    wraps: int = 0


def _stamped_read(zone: Zone) -> tuple[float, int, float]:
    """The clock before a read, the counter, the clock after it.

    A thread can be preempted between a read and its timestamp; the two stamps bound when the
    value was read, so a step is judged on the longest span it can cover.
    """
    before_s = _now()
    value_uj = _read(zone)
    return before_s, value_uj, _now()


def _read(zone: Zone) -> int:
    try:
        return rapl_tree.read_uj(zone.energy_path)
    except PermissionError as e:
        raise MeasurementError(
            f"{zone.energy_path} became unreadable mid-window: {PERMISSION_FIX}"
        ) from e
    except (OSError, ValueError) as e:
        raise MeasurementError(
            f"cannot read RAPL counter {zone.energy_path} mid-window ({e}): the zone vanished "
            "(CPU hot-unplug or module unload?) or returned garbage; rerun the measurement"
        ) from e


class Accumulator:
    """Sums counter differences across wraps, rejecting resets, torn reads and late polls.

    Polled by a background thread and at the window's edges; thread-safe.

    Args:
        zones: the zones to count.
        update_period_s: how often the counters change (nominal or probed).
    """

    def __init__(self, zones: tuple[Zone, ...], *, update_period_s: float) -> None:
        self.update_period_s = update_period_s
        self.polls = 0
        self.max_gap_s = 0.0
        self._lock = threading.Lock()
        self._states = []
        for zone in zones:
            before_s, value_uj, _ = _stamped_read(zone)
            self._states.append(_ZoneState(zone, value_uj, before_s, first_s=before_s))

    @property
    def zones(self) -> tuple[Zone, ...]:
        """The zones counted, in reading order."""
        return tuple(s.zone for s in self._states)

    @property
    def total_uj(self) -> list[int]:
        """Microjoules counted per zone so far."""
        return [s.total_uj for s in self._states]

    @property
    def wraps(self) -> int:
        """Wraps counted over all zones so far."""
        return sum(s.wraps for s in self._states)

    def poll(self) -> None:
        """Read every counter once and add its difference since the last read.

        Raises:
            CounterFaultError: a reset, a torn read, or a poll too late to rule out a wrap.
            MeasurementError: a counter vanished or became unreadable.
        """
        with self._lock:
            for state in self._states:
                before_s, now_uj, after_s = _stamped_read(state.zone)
                self._step(state, now_uj, before_s, after_s)
            self.polls += 1

    def _step(self, state: _ZoneState, now_uj: int, before_s: float, after_s: float) -> None:
        zone = state.zone
        # The longest time the two reads can be apart: from before the last one to after this.
        gap_s = after_s - state.last_s
        self.max_gap_s = max(self.max_gap_s, gap_s)
        raw_uj = now_uj - state.last_uj
        delta_uj = raw_uj + zone.max_energy_range_uj if raw_uj < 0 else raw_uj
        # The energy between two reads covers at most one update period more than the gap.
        most_j = zone.max_power_w * (gap_s + 2 * self.update_period_s)
        if uj_to_j(delta_uj) > most_j:
            raise self._implausible(state, now_uj, raw_uj, delta_uj, gap_s)
        if uj_to_j(delta_uj + zone.max_energy_range_uj) <= zone.max_power_w * (
            gap_s + self.update_period_s
        ):
            raise CounterFaultError(
                f"RAPL {zone.component} was read {gap_s * 1000:.3g} ms after the previous "
                f"read: at up to {zone.max_power_w:g} W a whole wrap ({zone.range_j:g} J) "
                "could have passed unseen (the poll thread was starved, or "
                "`energy.rapl.poll_interval_s` is too long); the window is rejected",
                reason=f"{zone.component} poll {gap_s * 1000:.3g} ms late: a wrap could be missed",
            )
        if raw_uj < 0:
            self._check_wrap(state, now_uj, gap_s, after_s)
            state.wraps += 1
        state.total_uj += delta_uj
        state.last_uj = now_uj
        state.last_s = before_s

    def _implausible(
        self, state: _ZoneState, now_uj: int, raw_uj: int, delta_uj: int, gap_s: float
    ) -> CounterFaultError:
        """The fault for a step above the zone's maximum power, with its likely cause."""
        zone = state.zone
        implied_w = uj_to_j(delta_uj) / max(gap_s, self.update_period_s)
        where = f"RAPL {zone.component} ({zone.energy_path})"
        bound = f"the {zone.max_power_w:g} W it can draw ({zone.max_power_source})"
        if raw_uj < 0:
            return CounterFaultError(
                f"{where} went back from {state.last_uj} to {now_uj} uJ in "
                f"{gap_s * 1000:.3g} ms; as a wrap that is {uj_to_j(delta_uj):.4g} J, about "
                f"{implied_w:.3g} W, above {bound}: the counter was reset or a read was torn, "
                "not wrapped; the window is rejected",
                reason=f"{zone.component} counter reset: {implied_w:.3g} W implied "
                f"> {zone.max_power_w:g} W",
            )
        if implied_w <= rapl_tree.CEILING_W and zone.max_power_source != "energy.rapl.max_power_w":
            # A steady draw above a stated constraint is the constraint's fault, not the counter's.
            return CounterFaultError(
                f"{where} gained {uj_to_j(delta_uj):.4g} J in {gap_s * 1000:.3g} ms, about "
                f"{implied_w:.3g} W, above {bound}: this zone draws more than its "
                "constraint_*_max_power_uw states; set `energy.rapl.max_power_w` in the recipe "
                f"to its true maximum (above {implied_w:.3g} W, at most "
                f"{rapl_tree.CEILING_W:g} W); the window is rejected",
                reason=f"{zone.component} draws {implied_w:.3g} W > {zone.max_power_w:g} W "
                "(set energy.rapl.max_power_w)",
            )
        return CounterFaultError(
            f"{where} jumped by {uj_to_j(delta_uj):.4g} J in {gap_s * 1000:.3g} ms, about "
            f"{implied_w:.3g} W, above {bound}: the counter was reset or a read was torn; "
            "the window is rejected",
            reason=f"{zone.component} counter jump (torn read or reset): {implied_w:.3g} W "
            f"implied > {zone.max_power_w:g} W",
        )

    def _check_wrap(self, state: _ZoneState, now_uj: int, gap_s: float, after_s: float) -> None:
        """Reject a backward step that the zone's observed power says is a reset, not a wrap.

        The energy to the top of the range must fit under :data:`WRAP_POWER_SWING` times the
        window's average power so far (the energy after the wrap included) over the gap plus
        two update periods.
        """
        zone = state.zone
        to_top_uj = zone.max_energy_range_uj - state.last_uj
        observed_w = uj_to_j(state.total_uj + now_uj) / max(
            after_s - state.first_s, self.update_period_s
        )
        allowed_j = WRAP_POWER_SWING * observed_w * (gap_s + 2 * self.update_period_s)
        if uj_to_j(to_top_uj) > allowed_j:
            raise CounterFaultError(
                f"RAPL {zone.component} ({zone.energy_path}) went back from {state.last_uj} to "
                f"{now_uj} uJ in {gap_s * 1000:.3g} ms: as a wrap, {uj_to_j(to_top_uj):.4g} J "
                f"to the top of its {zone.range_j:g} J range, more than {WRAP_POWER_SWING:g} x "
                f"the {observed_w:.3g} W it drew so far allows ({allowed_j:.3g} J); it was "
                "probably reset, and this code cannot tell a reset from a wrap here, so the "
                "window is rejected",
                reason=f"{zone.component} counter reset or wrap (cannot tell): "
                f"{uj_to_j(to_top_uj):.3g} J to the top > {allowed_j:.3g} J",
            )


class PollThread:
    """One open window: its accumulator, poll thread and start time."""

    def __init__(self, accumulator: Accumulator, interval_s: float) -> None:
        self.accumulator = accumulator
        self.interval_s = interval_s
        self.error: Exception | None = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="compresslab-rapl", daemon=True)
        self.t0_s = time.perf_counter()

    def _run(self) -> None:
        try:
            while not self.stopping.wait(self.interval_s):
                self.accumulator.poll()
        except Exception as e:  # handed to stop(), which raises it in the caller's thread
            self.error = e


@dataclass
class CounterProbe:
    """What :func:`probe_counters` saw: each zone's update period, or why it is unusable."""

    period_s: float | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every counter moved, about as often as RAPL documents."""
        return not self.problems


def probe_counters(
    zones: tuple[Zone, ...],
    *,
    read: Callable[[Path], int] | None = None,
    frozen_after_s: float | None = None,
) -> CounterProbe:
    """Read every zone's counter in a tight loop: is it moving, and how often does it change?

    A healthy counter changes about every millisecond, so this takes a few milliseconds. A
    counter that does not change within ``frozen_after_s`` (default :data:`FROZEN_AFTER_S`) is
    frozen; one that changes less often than :data:`MAX_UPDATE_PERIOD_S` is too coarse.
    """
    read = read or rapl_tree.read_uj
    frozen_after_s = FROZEN_AFTER_S if frozen_after_s is None else frozen_after_s
    last = [read(z.energy_path) for z in zones]
    stamps: list[list[float]] = [[] for _ in zones]
    t0 = time.perf_counter()
    while True:
        now = time.perf_counter()
        elapsed = now - t0
        if all(len(s) >= 4 for s in stamps):
            break
        if elapsed > 3 * MAX_UPDATE_PERIOD_S and all(s for s in stamps):
            break  # every counter moved; the slow ones are slow, whatever their period
        if elapsed > frozen_after_s:
            break
        for i, zone in enumerate(zones):
            value = read(zone.energy_path)
            if value != last[i]:
                stamps[i].append(time.perf_counter())
                last[i] = value
        time.sleep(0.0002)
    problems: list[str] = []
    periods: list[float] = []
    for zone, seen in zip(zones, stamps, strict=True):
        if not seen:
            problems.append(
                f"{zone.component}'s counter ({zone.energy_path}) is frozen: it did not change "
                f"in {frozen_after_s:g} s although RAPL updates it about every "
                f"{RAPL_UPDATE_PERIOD_S * 1000:g} ms (a firmware or hypervisor fault); its "
                "readings would be zero or stale; use `sampler: estimate`"
            )
            continue
        gaps = [b - a for a, b in zip(seen, seen[1:], strict=False)]
        period_s = statistics.median(gaps) if len(gaps) >= 2 else None
        if period_s is None or period_s > MAX_UPDATE_PERIOD_S:
            every = f"about every {period_s:.3g} s" if period_s else "too rarely to time"
            problems.append(
                f"{zone.component}'s counter ({zone.energy_path}) changes {every}, not about "
                f"every {RAPL_UPDATE_PERIOD_S * 1000:g} ms as RAPL does (more than "
                f"{MAX_UPDATE_PERIOD_S * 1000:g} ms): an emulated or throttled counter whose "
                "windows would read a fraction of the energy; use `sampler: estimate`"
            )
            continue
        periods.append(period_s)
    return CounterProbe(max(periods) if periods else None, problems)


def frozen_zones(acc: Accumulator, duration_s: float) -> list[str]:
    """Zones whose counter did not move over a window long enough that it must have."""
    if duration_s < max(FROZEN_WINDOW_S, 50 * acc.update_period_s):
        return []
    return [z.component for z, total in zip(acc.zones, acc.total_uj, strict=True) if total == 0]
