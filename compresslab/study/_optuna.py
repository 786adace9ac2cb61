"""Optuna, loaded on first use and set up once (the package imports it nowhere else)."""

from __future__ import annotations

import logging
import warnings
from typing import Any


class TrialFailed(Exception):
    """A variant failed; Optuna records the trial as FAIL and the search goes on."""


class _DropFailedTrialTraceback(logging.Filter):
    """Optuna logs a traceback for every failed trial; ours logs one line with the reason."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, TrialFailed)


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
