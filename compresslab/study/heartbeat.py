"""Heartbeats: how the workers of a study tell a dead worker's trial from a slow one.

While a trial runs, a thread of its worker writes the trial attribute ``heartbeat`` (the
worker's clock, in Unix seconds) every :func:`interval_s` seconds, on every storage (SQLite,
journal, PostgreSQL). Another worker declares the trial dead only when it has seen the same
``heartbeat`` value for :func:`grace_period_s` seconds of its *own* clock, so the hosts' clocks need
not agree. Then the trial is failed with the reason :data:`REASON_SILENT` and its variant is
enqueued again (:meth:`TrialWatch.recover`).

One shortcut, never a guess: a trial whose process ran in this host's own PID namespace and
is gone (:func:`compresslab.study.workers.process_gone`) is dead at once (:data:`REASON_KILLED`),
so a search killed on a laptop resumes without waiting. A trial of this very process is never
declared dead by it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from compresslab.errors import UsageError
from compresslab.study import attrs
from compresslab.study._optuna import load_optuna
from compresslab.study.records import BASELINE_ATTR, interruption
from compresslab.study.workers import is_this_process, process_gone

log = logging.getLogger(__name__)

#: The trial attribute a running trial's worker refreshes.
HEARTBEAT_ATTR = "heartbeat"
#: Seconds between two heartbeats (default :data:`DEFAULT_INTERVAL_S`).
INTERVAL_ENV = "COMPRESSLAB_HEARTBEAT_S"
DEFAULT_INTERVAL_S = 10.0
#: Heartbeats a worker may miss before its trial is declared dead.
GRACE_BEATS = 6
REASON_SILENT = "interrupted (worker stopped sending heartbeats)"
REASON_KILLED = "interrupted (its process ended)"
REASON_CTRL_C = "interrupted (Ctrl-C)"
REASON_STORAGE = "interrupted (the study storage failed)"
#: How many times one variant is retried after interruptions (then it stays failed).
MAX_RETRIES = 3


def interval_s() -> float:
    """Seconds between heartbeats: ``$COMPRESSLAB_HEARTBEAT_S``, else 10.

    Raises:
        UsageError: the variable is set to something other than a positive number.
    """
    raw = os.environ.get(INTERVAL_ENV, "").strip()
    if not raw:
        return DEFAULT_INTERVAL_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < 3600:
        raise UsageError(
            f"{INTERVAL_ENV}={raw!r} is not a number of seconds between 0 and 3600: set it "
            f"to e.g. 10, or unset it (default {DEFAULT_INTERVAL_S:g})"
        )
    return value


def grace_period_s() -> float:
    """Seconds without a new heartbeat after which a running trial is declared dead."""
    return GRACE_BEATS * interval_s()


def _finished_error() -> type[Exception]:
    return load_optuna().exceptions.UpdateFinishedTrialError


class Heartbeat:
    """Refresh a trial's heartbeat from a background thread while the ``with`` block runs.

    The first heartbeat is written on entry. A heartbeat that cannot be written (a locked
    database, a full disk) is skipped: the worker's next storage write reports the problem.
    The thread ends when the trial has finished (another worker may have failed it).

    Args:
        storage: the study's Optuna storage.
        trial_id: the storage's id of the trial.
        every_s: seconds between heartbeats (default :func:`interval_s`).
        clock: the time written (Unix seconds).
    """

    def __init__(
        self,
        storage: Any,
        trial_id: int,
        *,
        every_s: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.storage = storage
        self.trial_id = trial_id
        self.every_s = interval_s() if every_s is None else every_s
        self.clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="compresslab-heartbeat", daemon=True)

    def beat(self) -> None:
        """Write one heartbeat now."""
        self.storage.set_trial_user_attr(self.trial_id, HEARTBEAT_ATTR, self.clock())

    def _run(self) -> None:
        finished = _finished_error()
        while not self._stop.wait(self.every_s):
            try:
                self.beat()
            except finished:
                return
            except Exception as e:  # the worker's own writes will say what is wrong
                log.debug("heartbeat of trial id %d not written: %s", self.trial_id, e)

    def __enter__(self) -> Heartbeat:
        self.beat()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        # A heartbeat being written finishes (or fails harmlessly once the trial is told).
        self._thread.join(timeout=2.0)


class TrialWatch:
    """What this worker has seen of the study's running trials: which ones died.

    Keep one for a whole session and call :meth:`recover` between trials: a trial is declared
    dead after :attr:`grace_s` seconds of this watch's observations without a new heartbeat.

    Args:
        grace_s: the grace period (default :func:`grace_period_s`).
        clock: a monotonic clock (seconds).
    """

    def __init__(
        self, *, grace_s: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.grace_s = grace_period_s() if grace_s is None else grace_s
        self.clock = clock
        # trial id -> (the heartbeat last seen, when this watch first saw that value)
        self._seen: dict[int, tuple[Any, float]] = {}
        self._warned: set[int] = set()

    def dead(self, trial: Any) -> str | None:
        """Why a RUNNING trial is dead (the reason it fails with), or None while it may live."""
        ua = trial.user_attrs
        if is_this_process(ua):
            return None
        if process_gone(ua):
            return REASON_KILLED
        beat = ua.get(HEARTBEAT_ATTR)
        now = self.clock()
        seen = self._seen.get(trial._trial_id)
        if seen is None or seen[0] != beat:
            self._seen[trial._trial_id] = (beat, now)
            return None
        return REASON_SILENT if now - seen[1] >= self.grace_s else None

    def recover(self, study: Any) -> list[tuple[int, str]]:
        """Fail the dead running trials, and enqueue the interrupted ones' variants again.

        Interrupted trials (:func:`compresslab.study.records.interruption`) are those failed
        with a reason starting with "interrupted" (a dead worker, a kill, Ctrl-C, a failed
        storage) or with none; each is retried once (up to :data:`MAX_RETRIES` times for one
        variant). Returns ``(trial number, reason)`` of the trials failed here.
        """
        optuna = load_optuna()
        running = optuna.trial.TrialState.RUNNING
        failed: list[tuple[int, str]] = []
        live: set[int] = set()
        for t in study.get_trials(deepcopy=False, states=(running,)):
            live.add(t._trial_id)
            reason = self.dead(t)
            if reason is None or not _fail(study, t, reason):
                continue
            failed.append((t.number, reason))
            log.warning(
                "trial %d (%s, worker %s on %s): %s; its variant is retried",
                t.number,
                t.user_attrs.get(attrs.VARIANT, "variant not drawn yet"),
                t.user_attrs.get("pid", "?"),
                t.user_attrs.get(attrs.HOST, "?"),
                reason,
            )
        self._seen = {k: v for k, v in self._seen.items() if k in live}
        self._retry_interrupted(study)
        return failed

    def _retry_interrupted(self, study: Any) -> None:
        trials = study.get_trials(deepcopy=False)
        by_number = {t.number: t for t in trials}
        retried = {t.user_attrs.get(attrs.RETRY_OF) for t in trials}
        for t in trials:
            if interruption(t) is None or t.number in retried or not t.params:
                continue
            if _retries(t, by_number) >= MAX_RETRIES:
                if t.number not in self._warned:
                    self._warned.add(t.number)
                    log.warning(
                        "trial %d (%s) was interrupted again after %d retries: not retried "
                        "any more (does this variant stop its worker?)",
                        t.number,
                        t.user_attrs.get(attrs.VARIANT, "?"),
                        MAX_RETRIES,
                    )
                continue
            study.enqueue_trial(
                t.params,
                user_attrs={
                    attrs.RETRY_OF: t.number,
                    BASELINE_ATTR: bool(t.user_attrs.get(BASELINE_ATTR)),
                },
            )


def _retries(trial: Any, by_number: dict[int, Any]) -> int:
    """How many retries of one variant led to ``trial`` (0 for a first attempt)."""
    n = 0
    while (source := by_number.get(trial.user_attrs.get(attrs.RETRY_OF))) is not None and n < 100:
        n += 1
        trial = source
    return n


def _fail(study: Any, trial: Any, reason: str) -> bool:
    """Fail a running trial with ``reason``; False when it finished meanwhile."""
    optuna = load_optuna()
    try:
        study._storage.set_trial_user_attr(trial._trial_id, "error", reason)
        study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
    except _finished_error():
        return False  # its worker finished it, or another worker failed it first
    return True


def fail_own_running(study: Any, reason: str) -> list[int]:
    """Fail this process's RUNNING trials with ``reason`` (after an interrupt): their numbers."""
    optuna = load_optuna()
    done = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if is_this_process(t.user_attrs) and _fail(study, t, reason):
            done.append(t.number)
    return done
