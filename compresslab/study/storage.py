"""Where a study lives: SQLite, a journal file, or an RDB shared by a fleet of workers."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

from compresslab.errors import StorageError
from compresslab.recipe import Recipe
from compresslab.study._optuna import load_optuna
from compresslab.study.records import BASELINE_ATTR
from compresslab.study.samplers import make_optuna_sampler

_HEARTBEAT_S = 20
# SQLAlchemy errors of two workers creating the same tables at once (see open_study).
_SCHEMA_RACE = ("ProgrammingError", "IntegrityError")


def default_storage(recipe: Recipe, base_dir: Path | None = None) -> str:
    """``sqlite:///<output>/<name>/study.db`` (the folder is created)."""
    out = recipe.output_dir(base_dir)
    out.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(out / 'study.db').resolve()}"


def make_storage(url: str) -> Any:
    """An Optuna storage for ``url``.

    - ``sqlite:///path``: one process (the default, under the report folder);
    - ``journal:///path`` (or ``journal:relative/path``): several processes on one host share a
      journal file;
    - ``postgresql://...`` / ``mysql://...``: several hosts share an RDB, with heartbeats so a
      dead worker's trial is failed and retried (``RetryFailedTrialCallback``).
    """
    optuna = load_optuna()
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        path = url.removeprefix("journal:")
        path = path.removeprefix("//") if path.startswith("///") else path
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(path))
    if url.startswith("sqlite"):
        return optuna.storages.RDBStorage(url)
    return optuna.storages.RDBStorage(
        url,
        heartbeat_interval=_HEARTBEAT_S,
        grace_period=3 * _HEARTBEAT_S,
        heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
            max_retry=2
        ),
    )


def open_study(recipe: Recipe, *, storage: str, sampler: str | None = None) -> Any:
    """Create or load the recipe's study in ``storage`` (with the named Optuna sampler)."""
    optuna = load_optuna()
    shared = not storage.startswith("sqlite")
    optuna_sampler = make_optuna_sampler(recipe, sampler, shared=shared) if sampler else None
    try:
        for attempt in range(3):
            try:
                study = optuna.create_study(
                    study_name=recipe.study_name,
                    storage=make_storage(storage),
                    directions=["maximize", "minimize"],
                    sampler=optuna_sampler,
                    load_if_exists=True,
                )
                break
            except Exception as e:
                # Workers started together on an empty database race to create its tables;
                # the losers see "already exists" and simply open it again.
                if not shared or attempt == 2 or type(e).__name__ not in _SCHEMA_RACE:
                    raise
                time.sleep(0.5 * (attempt + 1))
        study.set_metric_names([recipe.task.metric, "energy_j_per_inference"])
    except ImportError as e:
        raise StorageError(
            f"cannot open the study storage '{storage}': its database driver is not installed "
            f"({e}): `pip install 'psycopg[binary]'` for postgresql://, `pip install pymysql` "
            "and a mysql+pymysql:// URL for MySQL"
        ) from e
    except Exception as e:  # sqlalchemy/optuna raise many kinds for a bad storage
        raise StorageError(
            f"cannot open the study storage '{storage}' ({type(e).__name__}: {e}): check the URL "
            "and that the database is reachable, or remove a corrupt study.db to start afresh"
        ) from e
    return study


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_dead_local_trials(study: Any, *, single_process: bool) -> int:
    """Trials left RUNNING by a dead process become FAIL and are enqueued again.

    With ``single_process`` (SQLite: one process at a time) every RUNNING trial is dead;
    otherwise only those that a process of this host started and that process is gone. RDB
    storages with heartbeats also catch dead workers of other hosts after the grace period.
    """
    optuna = load_optuna()
    host = socket.gethostname()
    n = 0
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        pid = t.user_attrs.get("pid")
        local_dead = (
            t.user_attrs.get("host") == host and isinstance(pid, int) and not _pid_alive(pid)
        )
        if not (single_process or local_dead):
            continue
        study._storage.set_trial_user_attr(t._trial_id, "error", "interrupted (process killed)")
        study._storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
        if t.params:
            study.enqueue_trial(
                t.params,
                user_attrs={
                    "retry_of": t.number,
                    BASELINE_ATTR: bool(t.user_attrs.get(BASELINE_ATTR)),
                },
            )
        n += 1
    return n
