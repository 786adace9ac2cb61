"""Said before any work: whether the recipe's tolerance can be resolved with its pool.

:func:`check_resolvable` computes :class:`~.resolvable.Resolvability` and :func:`announce`s
it: one info line (resolvable), a warning with the numbers and the fixes, or
:class:`UnresolvableToleranceError` (exit code 2) with ``search.evaluation.on_unresolvable:
error``. ``compresslab search`` calls it once the task is loaded and the baseline measured
(``SearchRun.prepare``), before any trial. ``compresslab check`` has measured nothing yet:
:func:`resolvability_before_work` loads the task for its pool and takes the baseline's
accuracy from the gate's baseline file, else from the recipe's study, where an earlier search
stored it (:func:`stored_baseline_accuracy`), else assumes it (the message says which).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from compresslab.errors import RecipeError, StorageError
from compresslab.recipe import Recipe
from compresslab.study import attrs
from compresslab.study._optuna import load_optuna
from compresslab.study.resolvable import (
    TYPICAL_DISCORDANCE,
    BaselineSource,
    Resolvability,
    resolvability,
)
from compresslab.study.storage import make_storage
from compresslab.study.storage_errors import journal_path

log = logging.getLogger(__name__)


class UnresolvableToleranceError(RecipeError):
    """The tolerance cannot be resolved with the pool, and the recipe asked for an error.

    Raised before any work (exit code 2), with ``search.evaluation.on_unresolvable: error``.
    """


def check_resolvable(
    recipe: Recipe,
    *,
    pool: int,
    baseline_accuracy: float | None,
    baseline_source: BaselineSource = "measured",
    discordance: float = TYPICAL_DISCORDANCE,
) -> Resolvability:
    """The recipe's :class:`Resolvability` on ``pool`` examples, said by :func:`announce`.

    Raises:
        UnresolvableToleranceError: it cannot be resolved and the recipe says
            ``search.evaluation.on_unresolvable: error`` (exit code 2; nothing was run).
    """
    result = resolvability(
        pool=pool,
        tolerance=recipe.search.tolerance,
        evaluation=recipe.search.evaluation,
        screen_examples=recipe.search.screen_examples,
        baseline_accuracy=baseline_accuracy,
        baseline_source=baseline_source,
        discordance=discordance,
        task=recipe.task.name or "",
        metric=recipe.task.metric,
    )
    announce(result)
    return result


def announce(result: Resolvability) -> None:
    """Log one info line (resolvable) or a warning; raise at ``on_unresolvable: error``.

    Raises:
        UnresolvableToleranceError: ``result.level`` is ``error`` (exit code 2).
    """
    if result.level == "error":
        raise UnresolvableToleranceError(
            result.message() + "; stopped before any trial or measurement"
        )
    log.log(logging.INFO if result.resolvable else logging.WARNING, "%s", result.message())


def resolvability_before_work(
    recipe: Recipe,
    *,
    baseline_accuracy: float | None = None,
    baseline_source: BaselineSource = "baseline file",
    storage: str | None = None,
    base_dir: Path | None = None,
) -> Resolvability:
    """:func:`check_resolvable` for a command that has not measured the baseline itself.

    The task is loaded for its pool; the baseline's accuracy is ``baseline_accuracy`` when
    given, else the one the recipe's study stored (:func:`stored_baseline_accuracy`, in
    ``storage`` or the recipe's), else assumed.

    Raises:
        UnresolvableToleranceError: see :func:`check_resolvable`.
    """
    from compresslab.tasks import load_task

    pool = len(load_task(recipe.task).eval_labels)
    if baseline_accuracy is None:
        url = (
            storage
            or recipe.search.storage
            or f"sqlite:///{(recipe.output_dir(base_dir) / 'study.db').resolve()}"
        )
        baseline_accuracy = stored_baseline_accuracy(recipe.study_name, storage=url, pool=pool)
        baseline_source = "study"
    return check_resolvable(
        recipe, pool=pool, baseline_accuracy=baseline_accuracy, baseline_source=baseline_source
    )


def stored_baseline_accuracy(study_name: str, *, storage: str, pool: int) -> float | None:
    """The baseline accuracy an earlier search stored in ``storage``, for a pool of ``pool``.

    Only a study already on disk is read (an SQLite or journal file that exists; a server is
    not contacted, and nothing is created); None when there is none, it holds no baseline
    accuracy, or it was measured on a pool of another size.
    """
    journal = journal_path(storage)
    if journal is not None:
        on_disk = Path(journal).is_file()
    elif storage.startswith("sqlite:///"):
        on_disk = Path(storage.removeprefix("sqlite:///").split("?", 1)[0]).is_file()
    else:
        on_disk = False
    if not on_disk:
        return None
    try:
        study = load_optuna().load_study(study_name=study_name, storage=make_storage(storage))
        user_attrs = study.user_attrs
    except Exception:  # no such study, or a storage this version cannot read: not known
        return None
    accuracy = user_attrs.get(attrs.BASELINE_ACCURACY)
    try:  # the typed record, not its keys
        examples = attrs.read_report_info(user_attrs).eval_examples
    except StorageError:  # a context this version cannot read: the pool is not known
        return None
    if not isinstance(accuracy, int | float) or examples != pool or not math.isfinite(accuracy):
        return None
    return float(accuracy)
