"""Optuna, loaded on first use and set up once (the package imports it nowhere else)."""

from __future__ import annotations

import logging
import re
import warnings
from typing import Any


class TrialFailed(Exception):
    """A variant failed; Optuna records the trial as FAIL and the search goes on."""


class _DropFailedTrialTraceback(logging.Filter):
    """Drops Optuna's warnings with the traceback of a failed trial: compresslab says it.

    A :class:`TrialFailed` was logged in one line by the objective (Optuna adds "failed with
    value None", dropped too); any other exception (Ctrl-C, a storage failure) leaves
    ``optimize`` and is reported once, by the search or the command line.
    """

    def __init__(self) -> None:
        super().__init__()
        self._dropped: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        number = re.match(r"Trial (\d+) failed", str(record.msg))
        if isinstance(exc, TrialFailed):
            if number:
                self._dropped.add(number.group(1))
            return False
        if exc is not None and number:
            self._dropped.add(number.group(1))
            return False
        if number and "failed with value" in str(record.msg) and number.group(1) in self._dropped:
            self._dropped.discard(number.group(1))
            return False
        return True


def load_optuna() -> Any:
    """The ``optuna`` module, its logging routed through ours (no per-failure traceback)."""
    import optuna as _optuna

    _optuna.logging.disable_default_handler()
    _optuna.logging.enable_propagation()
    study_log = logging.getLogger("optuna.study._optimize")
    if not any(isinstance(f, _DropFailedTrialTraceback) for f in study_log.filters):
        study_log.addFilter(_DropFailedTrialTraceback())
    warnings.filterwarnings("ignore", category=_optuna.exceptions.ExperimentalWarning)
    return _optuna
