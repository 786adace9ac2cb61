"""The search's own energy, one entry per session, checkpointed so that a kill loses little.

Every run of ``compresslab search`` on a study is a *session* with an id of its own. Its entry
is a study user attribute of its own, ``search_energy:<id>``, so that the workers of a fleet
never overwrite one another's: it is written when the session starts (0 J, unfinished),
rewritten with the running totals after every trial, and marked finished when the session
ends. A session killed with SIGKILL keeps the energy of its last checkpoint; what it spent
after that (at most one trial) is not counted.

Studies written by older versions hold one list, ``search_energy``, of finished sessions; it
is still read.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import socket
import time
import uuid
from collections.abc import Mapping
from typing import Any

from compresslab.errors import MeasurementError, StorageError
from compresslab.records import RecordFormatError, SessionEnergy, from_json
from compresslab.study.workers import identity, pid_alive, pid_namespace, process_gone

log = logging.getLogger(__name__)

#: The study attribute of the older versions: one list of finished sessions.
LEGACY_ATTR = "search_energy"
#: The prefix of one session's study attribute (``search_energy:<id>``).
SESSION_PREFIX = "search_energy:"
#: An unfinished session of another host with no checkpoint for this long is taken for dead.
STALE_S = 600.0


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class Session:
    """One search session's energy: a sampler window re-opened at every checkpoint.

    Args:
        study: the Optuna study the entry is written to.
        cost: an energy sampler, already started (``start()``/``stop() -> Reading``).
    """

    def __init__(self, study: Any, cost: Any) -> None:
        self.study = study
        self.cost = cost
        self.id = uuid.uuid4().hex[:12]
        self.entry: dict[str, Any] = {
            "session": self.id,
            "energy_j": 0.0,
            "duration_s": 0.0,
            "provenance": str(getattr(cost, "provenance", "unknown")),
            **identity(),
            "started": _now(),
            "updated": _now(),
            "updated_unix": time.time(),
            "checkpoints": 0,
            "finished": False,
            # What the session spent outside trials (set-up, confirmation), in seconds.
            "parts": {},
        }
        # The estimate sampler's coefficients price each part's CPU-seconds like the session.
        coefficients = {
            k: float(getattr(cost, k))
            for k in ("watts_per_core", "watts_per_gb")
            if hasattr(cost, k)
        }
        if coefficients:
            self.entry["coefficients"] = coefficients
        self._write()

    def add_parts(self, parts: dict[str, dict[str, float]]) -> None:
        """Add seconds of session-level parts (``setup``, ``confirm``), written next checkpoint."""
        mine = self.entry["parts"]
        for name, part in parts.items():
            into = mine.setdefault(name, {"wall_s": 0.0, "cpu_s": 0.0, "rss_gb": 0.0})
            into["wall_s"] += float(part.get("wall_s", 0.0))
            into["cpu_s"] += float(part.get("cpu_s", 0.0))
            into["rss_gb"] = max(into["rss_gb"], float(part.get("rss_gb", 0.0)))

    @property
    def attr(self) -> str:
        """The study attribute that holds this session's entry."""
        return SESSION_PREFIX + self.id

    def _write(self) -> None:
        self.study.set_user_attr(self.attr, dict(self.entry))

    def _read(self, *, restart: bool) -> None:
        """Close the sampler's window, add it to the totals, and open the next one."""
        try:
            reading = self.cost.stop()
        except MeasurementError as e:
            # A window too short for the counter holds (next to) nothing: nothing is lost.
            log.debug("search energy checkpoint skipped: %s", e)
        else:
            self.entry["energy_j"] += float(reading.energy_j)
            self.entry["duration_s"] += float(reading.duration_s)
            self.entry["provenance"] = str(reading.provenance)
        if restart:
            self.cost.start()

    def checkpoint(self) -> None:
        """Record the energy so far (after every trial): a later kill loses only what follows."""
        self._read(restart=True)
        self.entry["checkpoints"] += 1
        self.entry["updated"] = _now()
        self.entry["updated_unix"] = time.time()
        self._write()

    def finish(self, outcome: str = "complete") -> None:
        """Record the session's last reading and mark it finished (``outcome`` says how)."""
        self._read(restart=False)
        self.entry.update(finished=True, outcome=outcome, updated=_now(), updated_unix=time.time())
        self._write()

    def abandon(self, outcome: str) -> None:
        """The session ends on an error or an interrupt: record what can be, never raise."""
        with contextlib.suppress(Exception):
            self.finish(outcome)
        with contextlib.suppress(Exception):
            self.cost.stop()


def session_state(entry: dict[str, Any], *, now: float | None = None) -> str:
    """``finished``, ``running`` or ``killed``: how a session entry stands.

    An unfinished session is ``killed`` when its process is gone (a process of this host and
    PID namespace: :func:`compresslab.study.workers.process_gone`), or when it has written no
    checkpoint for :data:`STALE_S` seconds (another host or container); else it is ``running``.
    """
    if entry.get("finished", True):  # the older versions wrote finished sessions only
        return "finished"
    if process_gone(entry):
        return "killed"
    pid = entry.get("pid")
    same_namespace = (
        entry.get("pidns") is not None
        and entry.get("pidns") == pid_namespace()
        and entry.get("host") == socket.gethostname()
    )
    if same_namespace and isinstance(pid, int) and pid_alive(pid):
        return "running"
    updated = entry.get("updated_unix")
    now = time.time() if now is None else now
    if isinstance(updated, int | float) and now - updated < STALE_S:
        return "running"
    return "killed"


def sessions_of(user_attrs: Mapping[str, Any]) -> list[SessionEnergy]:
    """Every session of a study (older list first, then by start), each with its ``state``.

    Raises:
        StorageError: a session's entry does not fit :class:`~compresslab.records.SessionEnergy`.
    """
    legacy = [dict(s) for s in user_attrs.get(LEGACY_ATTR, []) if isinstance(s, dict)]
    own = sorted(
        (dict(v) for k, v in user_attrs.items() if k.startswith(SESSION_PREFIX)),
        key=lambda s: (str(s.get("started", "")), str(s.get("session", ""))),
    )
    now = time.time()
    out = []
    for s in legacy + own:
        try:
            out.append(from_json(SessionEnergy, {**s, "state": session_state(s, now=now)}))
        except RecordFormatError as e:
            raise StorageError(
                f"the study's search session {s.get('session', '(older list)')} holds a figure "
                f"this version cannot read ({e}); the study was written by another compresslab "
                "version: report it with that version"
            ) from e
    return out
