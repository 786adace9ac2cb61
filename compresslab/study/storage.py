"""Where a study lives: SQLite, a journal file, or an RDB shared by a fleet of workers."""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path
from typing import Any

from compresslab.errors import RecipeError, StorageError
from compresslab.recipe import Recipe, recipe_changes, recipe_hash
from compresslab.study._optuna import load_optuna
from compresslab.study.records import BASELINE_ATTR
from compresslab.study.samplers import make_optuna_sampler
from compresslab.study.sessions import pid_alive

log = logging.getLogger(__name__)

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
    - ``postgresql://...``: several hosts share an RDB, with heartbeats so a
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
            f"({e}): `pip install 'psycopg[binary]'` for postgresql:// (see docs/fleet.md)"
        ) from e
    except Exception as e:  # sqlalchemy/optuna raise many kinds for a bad storage
        raise StorageError(
            f"cannot open the study storage '{storage}' ({type(e).__name__}: {e}): check the URL "
            "and that the database is reachable, or remove a corrupt study.db to start afresh"
        ) from e
    return study


#: Study attributes: the JSON dump of the recipe the study was created with, and its hash.
RECIPE_ATTR = "recipe"
RECIPE_HASH_ATTR = "recipe_hash"


class RecipeChangedError(RecipeError):
    """The recipe changed, since its study was created, in a field that decides results.

    Raised before any work starts (exit code 2); ``changes`` lists the changed fields as
    :func:`compresslab.recipe.recipe_changes` writes them.
    """

    def __init__(self, message: str, *, changes: list[str]) -> None:
        super().__init__(message)
        self.changes = changes


def guard_recipe(study: Any, recipe: Recipe, *, storage: str) -> None:
    """Refuse to add trials to a study created under other result-deciding recipe fields.

    A new study stores the recipe; a study of an older version (no stored recipe) is resumed
    with a warning and stores it then.

    Raises:
        RecipeChangedError: a field of :data:`compresslab.recipe.RESULT_FIELDS` changed; the
            message names the changes and the two ways out.
    """
    current = recipe.model_dump(mode="json")
    stored = study.user_attrs.get(RECIPE_ATTR)
    if not isinstance(stored, dict):
        n = len(study.get_trials(deepcopy=False))
        if n or "baseline_accuracy" in study.user_attrs:
            log.warning(
                "study '%s' in %s was made by an older compresslab that did not store its "
                "recipe: whether its %d trial(s) were measured under this recipe cannot be "
                "checked; resuming, and storing this recipe for the next runs (use --fresh to "
                "start over if the recipe changed)",
                study.study_name,
                storage,
                n,
            )
        study.set_user_attr(RECIPE_ATTR, current)
        study.set_user_attr(RECIPE_HASH_ATTR, recipe_hash(recipe))
        return
    changes = recipe_changes(stored, current)
    if not changes:
        return
    n = len(study.get_trials(deepcopy=False))
    shown = "; ".join(changes[:3]) + (f"; and {len(changes) - 3} more" if len(changes) > 3 else "")
    raise RecipeChangedError(
        f"the recipe changed since study '{study.study_name}' in {storage} was started, in "
        f"what decides measured results ({shown}): new trials would share one frontier with "
        f"its {n} trial(s) measured the old way. Either pass --fresh (Python: fresh=True) to "
        f"start the study over (its {n} trial(s) are deleted), or set a new "
        "`search.study_name` (or `name`) in the recipe to keep the old study apart",
        changes=changes,
    )


def delete_study(recipe: Recipe, *, storage: str) -> int | None:
    """Delete the recipe's study from ``storage``: the number of trials it held, or None.

    None means there was no such study (nothing to delete).
    """
    optuna = load_optuna()
    try:
        store = make_storage(storage)
        try:
            study = optuna.load_study(study_name=recipe.study_name, storage=store)
        except KeyError:
            return None
        n = len(study.get_trials(deepcopy=False))
        optuna.delete_study(study_name=recipe.study_name, storage=store)
    except ImportError as e:
        raise StorageError(
            f"cannot open the study storage '{storage}': its database driver is not installed "
            f"({e}): see docs/fleet.md"
        ) from e
    except Exception as e:  # sqlalchemy/optuna raise many kinds for a bad storage
        raise StorageError(
            f"cannot delete study '{recipe.study_name}' from '{storage}' ({type(e).__name__}: "
            f"{e}): check the URL and that the database is reachable"
        ) from e
    return n


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
            t.user_attrs.get("host") == host and isinstance(pid, int) and not pid_alive(pid)
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
