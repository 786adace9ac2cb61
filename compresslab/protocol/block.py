"""The energy of any block of code: ``with compresslab.measure_block(...) as m:`` (one window).

Say whether a figure is gross machine energy, net of an idle reading, or a process's own:
a block measured with a machine-level counter and no idle reading is *gross* (it includes
everything else the machine did), and says so.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

#: Idle power drifts by a few percent between two readings: a block whose net figure is below
#: this share of its gross one cannot be told apart from idle with one idle reading.
BLOCK_MIN_NET_SHARE = 0.05

#: A machine counter changes once per update period, so a block of k periods reads up to about
#: one period (1/k of its energy) too much or too little: 20 periods keep that under 5%.
BLOCK_MIN_UPDATE_PERIODS = 20


class BlockMeasurement:
    """The energy of one ``with compresslab.measure_block(...)`` block, filled in when it exits.

    What the figure is, :attr:`figure` says:

    - ``net``: a machine-scoped sampler (``rapl``, ``nvml``) with ``idle_s`` > 0: the machine's
      idle power was read for ``idle_s`` just before the block and idle power x the block's
      duration is subtracted. One short idle reading, taken at another time than the block:
      the machine's idle power drifts, so the net figure carries an uncertainty this one-window
      API does not state (:func:`compresslab.measure` measures idle before and after, states it).
    - ``gross``: a machine-scoped sampler without an idle reading: everything the machine
      (all of its processes, and its idle draw) used while the block ran.
    - ``process``: a process-scoped sampler (``estimate``): this process's own share; no idle
      applies.

    One window gives no confidence interval: :func:`compresslab.measure` repeats windows.
    """

    def __init__(
        self, *, sampler: str, selection: str, inferences: int, scope: str, idle_s: float
    ) -> None:
        self.sampler = sampler
        self.selection = selection
        self.inferences = inferences
        self.scope = scope
        self.idle_s = idle_s
        self.reading: Any = None
        self.idle_reading: Any = None
        #: The shortest block the sampler's counter allows (set when the block exits; 0 for a
        #: process-scoped sampler, which reads no machine counter).
        self.min_duration_s = 0.0

    def _done(self) -> Any:
        if self.reading is None:
            raise RuntimeError("the block has not finished: read the figures after the `with`")
        return self.reading

    @property
    def idle_applies(self) -> bool:
        """Whether the sampler sees the whole machine, whose idle power could be subtracted."""
        return self.scope == "machine"

    @property
    def idle_measured(self) -> bool:
        """Whether idle power was read before the block (and is subtracted)."""
        return self.idle_reading is not None

    @property
    def net(self) -> bool:
        """True when idle power was subtracted: :attr:`energy_j` is what the block added."""
        return self.idle_measured

    @property
    def figure(self) -> str:
        """``net``, ``gross`` (machine energy, idle included) or ``process`` (see the class)."""
        if not self.idle_applies:
            return "process"
        return "net" if self.net else "gross"

    @property
    def idle_power_w(self) -> float | None:
        """The idle power read before the block (None when not read)."""
        if self.idle_reading is None:
            return None
        return float(self.idle_reading.energy_j / self.idle_reading.duration_s)

    @property
    def gross_energy_j(self) -> float:
        """Joules the sampler read over the block (all components), nothing subtracted."""
        return float(self._done().energy_j)

    @property
    def energy_j(self) -> float:
        """Joules of the block: net of idle when :attr:`net`, else as read (see :attr:`figure`)."""
        gross = self.gross_energy_j
        idle_w = self.idle_power_w
        return gross if idle_w is None else gross - idle_w * self.duration_s

    @property
    def energy_j_per_inference(self) -> float:
        """Joules per inference (``energy_j / inferences``)."""
        return self.energy_j / self.inferences

    @property
    def duration_s(self) -> float:
        """Wall time of the block."""
        return float(self._done().duration_s)

    @property
    def provenance(self) -> str:
        """How the figure was obtained (the weakest component's label)."""
        return str(self._done().provenance)

    def note(self) -> str:
        """One sentence on what the figure covers."""
        if self.figure == "process":
            return "this process's own share (process-scoped sampler): no idle applies"
        if self.figure == "gross":
            return (
                "gross: the whole machine over the block, its idle draw and other processes "
                "included; pass idle_s to subtract idle power"
            )
        return (
            f"net: idle power read for {self.idle_s:g} s just before the block, subtracted; "
            "idle drifts, so the figure carries an uncertainty this one window does not state"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary: figures, whether they are gross or net, per-component provenance."""
        return {
            "sampler": self.sampler,
            "selection": self.selection,
            "energy_j": self.energy_j,
            "energy_j_per_inference": self.energy_j_per_inference,
            "gross_energy_j": self.gross_energy_j,
            "figure": self.figure,
            "net": self.net,
            "idle_measured": self.idle_measured,
            "idle_applies": self.idle_applies,
            "idle_power_w": self.idle_power_w,
            "idle_s": self.idle_s if self.idle_measured else 0.0,
            "scope": self.scope,
            "note": self.note(),
            "inferences": self.inferences,
            "duration_s": self.duration_s,
            "provenance": self.provenance,
            "components": {
                c.component: {"energy_j": c.energy_j, "provenance": str(c.provenance)}
                for c in self._done().components
            },
        }


def _idle_reading(sampler: Any, idle_s: float) -> Any:
    """One reading of the machine at rest (a counter fault is read again, twice at most)."""
    from compresslab.energy import CounterFaultError

    for attempt in range(3):
        sampler.start()
        time.sleep(idle_s)
        try:
            return sampler.stop()
        except CounterFaultError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def counter_period_s(sampler: Any) -> float:
    """How often the sampler's counter changes: its nominal period, or the probed one if longer.

    RAPL states a nominal 1 ms and probes the counters (a throttled or emulated one changes
    every 50 ms); NVML states its own (0.1 s with energy counters, 1 s when it integrates
    power). A sampler with no probe is taken at its stated period.
    """
    period_s = float(sampler.update_period_s())
    probe = getattr(sampler, "probe_update_period_s", None)
    if callable(probe):
        probed = probe()
        if probed is not None:
            period_s = max(period_s, float(probed))
    return period_s


def _too_short(name: str, elapsed_s: float, period_s: float) -> str:
    """Why a block of ``elapsed_s`` is refused, and how to lengthen it."""
    minimum_s = BLOCK_MIN_UPDATE_PERIODS * period_s
    return (
        f"the block lasted {elapsed_s * 1000:.3g} ms, under the {minimum_s * 1000:.4g} ms "
        f"minimum for the {name} sampler ({BLOCK_MIN_UPDATE_PERIODS} x its counter's "
        f"{period_s * 1000:.3g} ms update period: a block of k periods reads up to 1/k off, "
        f"so {BLOCK_MIN_UPDATE_PERIODS} keeps it within "
        f"{1 / BLOCK_MIN_UPDATE_PERIODS:.0%}); put more work inside the block (repeat the "
        "batch and count every repeat in `inferences`), or use "
        "compresslab.measure(model, inputs) (the window protocol, which sizes its windows)"
    )


def _check_arguments(sampler: str, inferences: int, idle_s: float) -> None:
    """Refuse what :func:`measure` cannot do, before the host is locked."""
    from compresslab.errors import InvalidArgumentError, MeasurementError

    if sampler == "model":
        raise MeasurementError(
            "the modeled tier counts a model's calls and cannot measure a code block: "
            "use compresslab.measure(model, inputs, sampler='model')"
        )
    if inferences < 1:
        raise InvalidArgumentError(
            f"inferences must be at least 1, got {inferences!r}", argument="inferences"
        )
    if not idle_s >= 0:
        raise InvalidArgumentError(
            f"idle_s must be 0 or more seconds, got {idle_s!r}", argument="idle_s"
        )


def _long_enough(sampler: Any, elapsed_s: float) -> float:
    """The block's minimum length for ``sampler``'s counter; raise when it lasted less."""
    from compresslab.errors import MeasurementError

    period_s = counter_period_s(sampler)
    if elapsed_s < BLOCK_MIN_UPDATE_PERIODS * period_s:
        raise MeasurementError(_too_short(sampler.name, elapsed_s, period_s))
    return BLOCK_MIN_UPDATE_PERIODS * period_s


@contextlib.contextmanager
def measure(
    *,
    sampler: str = "auto",
    inferences: int = 1,
    device: str = "cpu",
    idle_s: float = 0.0,
) -> Iterator[BlockMeasurement]:
    """Measure the energy of the code in a ``with`` block (one window).

    Example::

        with compresslab.measure_block(inferences=len(batch), idle_s=2) as m:
            model(batch)
        print(m.energy_j_per_inference, m.figure, m.provenance)

    Args:
        sampler: ``auto``, ``rapl``, ``nvml`` or ``estimate``.
        inferences: how many inferences the block runs (the figure is per inference).
        device: where the block's model runs (``cpu``, ``cuda[:N]``), which decides ``auto``.
        idle_s: with a machine-scoped sampler, read idle power this long just before the block
            and subtract it (the figure is then ``net``); 0 reports the ``gross`` figure.
            Process-scoped samplers have no idle: it is not read.

    Raises:
        MeasurementError: with a machine-scoped sampler, the block was shorter than
            :data:`BLOCK_MIN_UPDATE_PERIODS` of its counter's update periods
            (:func:`counter_period_s`; 1 s on a 50 ms counter): run more work inside it; the
            reading is implausible; or, net of idle, the block
            added under :data:`BLOCK_MIN_NET_SHARE` of its gross energy (not told apart from
            idle).
    """
    from compresslab.energy import select_sampler
    from compresslab.errors import MeasurementError
    from compresslab.protocol import host_lock

    _check_arguments(sampler, inferences, idle_s)
    selection = select_sampler(sampler, device=device)
    chosen = selection.sampler
    scope = getattr(chosen, "scope", "machine")
    result = BlockMeasurement(
        sampler=chosen.name,
        selection=selection.explain(),
        inferences=inferences,
        scope=scope,
        idle_s=idle_s,
    )
    with host_lock():
        if idle_s > 0 and scope == "machine":
            result.idle_reading = _idle_reading(chosen, idle_s)
        chosen.start()
        t0 = time.perf_counter()
        try:
            yield result
        except BaseException:
            with contextlib.suppress(Exception):
                chosen.stop()
            raise
        elapsed_s = time.perf_counter() - t0
        try:
            reading = chosen.stop()
        except MeasurementError as e:
            if scope == "machine":
                period_s = counter_period_s(chosen)
                if elapsed_s < BLOCK_MIN_UPDATE_PERIODS * period_s:
                    raise MeasurementError(_too_short(chosen.name, elapsed_s, period_s)) from e
            raise
    if scope == "machine":
        result.min_duration_s = _long_enough(chosen, max(elapsed_s, float(reading.duration_s)))
    result.reading = reading
    if result.net and result.energy_j < BLOCK_MIN_NET_SHARE * result.gross_energy_j:
        idle_w = result.idle_power_w or 0.0
        raise MeasurementError(
            f"the block read {result.gross_energy_j:.4g} J over {result.duration_s:.3g} s, and "
            f"the machine draws {idle_w * result.duration_s:.4g} J idle in that time "
            f"({idle_w:.3g} W): it added {result.energy_j:.3g} J, under "
            f"{BLOCK_MIN_NET_SHARE:.0%} of the total, which cannot be told apart from idle "
            "(idle drifts by a few percent); run more work inside the block, or use "
            "compresslab.measure(model, inputs) for repeated windows with an interval"
        )
