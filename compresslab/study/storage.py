"""Where a study lives: SQLite, a journal file, or an RDB shared by a fleet of workers."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from compresslab.errors import RecipeError
from compresslab.recipe import Recipe, recipe_changes, recipe_hash
from compresslab.study import storage_errors
from compresslab.study._optuna import load_optuna
from compresslab.study.journal import journal_storage
from compresslab.study.samplers import make_optuna_sampler
from compresslab.study.storage_errors import journal_path, redact, storage_error

log = logging.getLogger(__name__)

# SQLAlchemy errors of two workers creating the same tables at once (see open_study).
_SCHEMA_RACE = ("ProgrammingError", "IntegrityError")
#: Seconds of connecting to a server after which a line says it is still going on.
_SLOW_CONNECT_S = 2.0


def default_storage(recipe: Recipe, base_dir: Path | None = None) -> str:
    """``sqlite:///<output>/<name>/study.db`` (the folder is created)."""
    out = recipe.output_dir(base_dir)
    out.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(out / 'study.db').resolve()}"


def make_storage(url: str) -> Any:
    """An Optuna storage for ``url``.

    - ``sqlite:///path``: the default, under the report folder; several processes of one host
      may share it (a write waits up to 30 s for another's);
    - ``journal:///path`` (or ``journal:relative/path``): several processes on one host share a
      journal file; a torn last record is cut off (:mod:`.journal`);
    - ``postgresql://...``: several hosts share an RDB; a connection gives up after 10 s.

    On every storage, a dead worker's trial is found by its heartbeat (:mod:`.heartbeat`),
    failed and retried. Storage errors are left to the caller (see :func:`storage_error`).
    """
    optuna = load_optuna()
    journal = journal_path(url)
    if journal is not None:
        return journal_storage(journal)
    if url.startswith("sqlite"):
        return optuna.storages.RDBStorage(
            url, engine_kwargs={"connect_args": {"timeout": storage_errors.SQLITE_BUSY_S}}
        )
    timeout = storage_errors.CONNECT_TIMEOUT_S
    kwargs: dict[str, Any] = {}
    if url.startswith("postgresql"):
        kwargs = {"engine_kwargs": {"connect_args": {"connect_timeout": timeout}}}
    log.info("connecting to %s (gives up after %g s)", redact(url), timeout)
    slow = threading.Timer(
        _SLOW_CONNECT_S,
        lambda: log.warning("still connecting to %s (gives up after %g s)", redact(url), timeout),
    )
    slow.daemon = True
    slow.start()
    try:
        return optuna.storages.RDBStorage(url, **kwargs)
    finally:
        slow.cancel()


def open_study(recipe: Recipe, *, storage: str, sampler: str | None = None) -> Any:
    """Create or load the recipe's study in ``storage`` (with the named Optuna sampler).

    Raises:
        StorageError: the storage cannot be opened; the message says why and what to do.
    """
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
                race = type(e).__name__ in _SCHEMA_RACE or "already exists" in str(e)
                if attempt == 2 or not race:
                    raise
                time.sleep(0.5 * (attempt + 1))
        # The second objective is the energy ratio to the baseline, paired in the trial's span.
        study.set_metric_names([recipe.task.metric, "energy_ratio_vs_baseline"])
    except Exception as e:  # sqlalchemy, its drivers and optuna raise many kinds
        raise storage_error(e, storage=storage) from e
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
                "checked; resuming, and storing this recipe for the next runs (start over with "
                "--fresh, fresh=True in Python, if the recipe changed)",
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

    Raises:
        StorageError: the storage cannot be opened or written; the message says what to do.
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
    except Exception as e:  # sqlalchemy, its drivers and optuna raise many kinds
        raise storage_error(
            e, storage=storage, doing=f"delete study '{recipe.study_name}' from"
        ) from e
    return n
