"""Optuna, loaded on first use and set up once (the package imports it nowhere else)."""

from __future__ import annotations

import logging
import re
import warnings
from typing import Any


class TrialFailed(Exception):
    """A variant failed; Optuna records the trial as FAIL and the search goes on."""


class _DropFailedTrialTraceback(logging.Filter):
    """Drops Optuna's two warnings about a failed trial: the objective logged one line already.

    Optuna logs the trial's traceback, then "failed with value None".
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
