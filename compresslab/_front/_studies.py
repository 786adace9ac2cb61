"""Running, opening, reporting and comparing studies: each returns a :class:`Study`.

:func:`search`, :func:`open` and :func:`rebuild_report` take a recipe in any form (a path, a
mapping, a :class:`~compresslab.recipe.Recipe`) and return a :class:`Study`;
:func:`compare` takes two studies however they are named. :func:`search_result` and
:func:`report_result` are the same search and report for the command line, which prints the
plain :class:`~compresslab.records.SearchResult` and draws its own progress bar.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compresslab._front._inputs import (
    RecipeLike,
    StudyPlace,
    check_storage,
    check_trials,
    is_recipe,
    load_recipe,
    stored_result,
)
from compresslab._front._study import Study, _process_state_kept
from compresslab.errors import CompressLabError, InvalidArgumentError
from compresslab.records import SearchInterrupted, SearchResult, TrialRecord, to_json

if TYPE_CHECKING:
    from compresslab.recipe import Recipe
    from compresslab.report.compare import Comparison

log = logging.getLogger(__name__)


def search(
    recipe: RecipeLike,
    *,
    trials: int | None = None,
    storage: str | None = None,
    fresh: bool = False,
    progress: bool = True,
    base_dir: Path | None = None,
    write_report: bool = True,
) -> Study:
    """Run (or resume) a recipe's search, write its report, and return it as a :class:`Study`.

    A study is resumed only under the recipe it was created with, as far as the fields that
    decide results go (:data:`compresslab.recipe.RESULT_FIELDS`); ``search.trials``, names,
    storage, output and report settings may change.

    Args:
        recipe: a path to the recipe's YAML, the recipe as a mapping, or a :class:`Recipe`.
        trials: distinct variants to reach, the baseline included (default: the recipe's
            ``search.trials``).
        storage: Optuna storage URL (default: the recipe's, else SQLite under the report
            folder).
        fresh: delete the recipe's study from its storage (every trial) and start over; needed
            when a field that decides results changed since the study was created.
        progress: show a progress bar (HTML in Jupyter, rich on stderr in a terminal);
            ``False`` prints nothing at all.
        base_dir: folder the recipe's relative ``output`` is resolved against (default: the
            working directory).
        write_report: write ``trials.csv``, ``pareto.png`` and ``report.md`` under
            ``<output>/<name>/``.

    Returns:
        The study, with every trial so far (a resumed search keeps the earlier ones).

    Raises:
        InvalidArgumentError: ``trials`` or ``storage`` is not a valid value.
        RecipeError: the recipe is invalid, or (``RecipeChangedError``) it changed in a field
            that decides results since its study was created; nothing was run
            (``fresh=True`` starts over).
        CompressLabError: every trial failed (the message gives the most common reason).
    """
    from compresslab.progress import search_progress

    check_storage(storage)
    check_trials(trials)
    rec = load_recipe(recipe)
    target = trials if trials is not None else rec.search.trials
    with (
        _process_state_kept(),
        search_progress(f"search {rec.name}", target, enabled=progress) as on_trial,
    ):
        result = search_result(
            rec,
            trials=trials,
            storage=storage,
            base_dir=base_dir,
            on_trial=on_trial,
            write_report=write_report,
            fresh=fresh,
        )
    study = Study(rec, result, base_dir=base_dir)
    log.info("search %s: %s", rec.name, result.counts())
    return study


# Shadows the builtin inside this module on purpose (`compresslab.open(recipe)`).
def open(recipe: RecipeLike, *, storage: str | None = None, base_dir: Path | None = None) -> Study:
    """Open a recipe's existing study from its storage (nothing is run or written).

    Args:
        recipe: a path to the recipe's YAML, the recipe as a mapping, or a :class:`Recipe`.
        storage: Optuna storage URL (default: the recipe's, else its SQLite file).
        base_dir: folder the recipe's relative ``output`` is resolved against.

    Raises:
        InvalidArgumentError: ``storage`` is not a valid value.
        StorageError: there is no study yet (run :func:`search` first) or the storage is
            unreachable.
    """
    from compresslab.study import load_result

    check_storage(storage)
    rec = load_recipe(recipe)
    with _process_state_kept():
        result = load_result(rec, storage=storage, base_dir=base_dir)
    return Study(rec, result, base_dir=base_dir)


def rebuild_report(
    recipe: RecipeLike,
    *,
    storage: str | None = None,
    base_dir: Path | None = None,
    confirm: bool = False,
) -> Study:
    """Rebuild a recipe's report from its study storage alone, and return the study.

    With ``confirm``, the frontier is first measured again paired with the baseline (the task
    is loaded and variants are rebuilt); without it no model is loaded or run.

    Raises:
        InvalidArgumentError: ``storage`` is not a valid value.
        StorageError: there is no study yet, or the storage is unreachable.
    """
    rec = load_recipe(recipe)
    with _process_state_kept():
        result = report_result(rec, storage=storage, base_dir=base_dir, confirm=confirm)
    return Study(rec, result, base_dir=base_dir)


def compare(
    a: Study | StudyPlace,
    b: Study | StudyPlace,
    *,
    study_a: str | None = None,
    study_b: str | None = None,
    base_dir: Path | None = None,
    force: bool = False,
) -> Comparison:
    """Two studies side by side: the variants in both, their figures and ratios.

    Args:
        a: a :class:`Study`; a recipe (its study: a ``.yaml``/``.yml`` path, a mapping or a
            Recipe); a report folder holding ``study.db``, a ``.db`` file or a storage URL.
        b: the same for the second study.
        study_a: the study's name in ``a`` when that storage holds several.
        study_b: likewise for ``b``.
        base_dir: folder a recipe's relative ``output`` is resolved against.
        force: divide absolute figures of different provenance anyway (said so).

    Returns:
        A :class:`compresslab.report.compare.Comparison`: ``.frame()`` (pandas),
        ``.markdown()``, ``.warnings`` (other machines, other recipes, mixed provenance).

    Raises:
        InvalidArgumentError: a study name given with a study that is not a storage.
        UsageError: nothing readable at a location, or several studies and no name.
    """
    from compresslab.report.compare import compare_results

    sides = []
    for place, name, argument in ((a, study_a, "study_a"), (b, study_b, "study_b")):
        if name is not None and (isinstance(place, Study | SearchResult) or is_recipe(place)):
            raise InvalidArgumentError(
                f"{argument} names a study in a storage; a Study or a recipe names its own "
                f"study: give a report folder, a .db file or a storage URL with {argument}",
                argument=argument,
            )
        if isinstance(place, Study):
            sides.append(place.result)
        else:
            sides.append(stored_result(place, study_name=name, base_dir=base_dir))
    comparison = compare_results(sides[0], sides[1], force=force)
    for warning in comparison.warnings:
        log.warning("compare: %s", warning)
    return comparison


# --- the same, for the command line: the plain search result --------------------------------


def search_result(
    recipe: RecipeLike,
    *,
    trials: int | None = None,
    storage: str | None = None,
    base_dir: Path | None = None,
    on_trial: Callable[[TrialRecord, int, int], None] | None = None,
    write_report: bool = True,
    fresh: bool = False,
) -> SearchResult:
    """:func:`search` without the :class:`Study`: the command line's own search.

    ``on_trial(record, completed, target)`` is called after each trial (the command line's
    progress bar). An interrupt (``SearchInterrupted``) writes the report of the trials
    completed, then goes on up.
    """
    from compresslab.report import write_report as _write
    from compresslab.study import run_search

    check_storage(storage)
    check_trials(trials)
    rec = load_recipe(recipe)
    try:
        result = run_search(
            rec, trials=trials, storage=storage, base_dir=base_dir, on_trial=on_trial, fresh=fresh
        )
    except SearchInterrupted as stop:
        # Ctrl-C: the report shows what was completed; the interrupt goes on up.
        if write_report and stop.result is not None and stop.result.trials:
            try:
                _write(stop.result, rec.output_dir(base_dir))
            except Exception as e:  # the interrupt matters more than the report
                log.warning("report not written after the interrupt: %s", e)
        raise
    if write_report:
        _write(result, rec.output_dir(base_dir))
    _record_search(rec, result, base_dir)
    _raise_if_all_failed(result, rec.output_dir(base_dir) / "report.md")
    return result


def report_result(
    recipe: RecipeLike,
    *,
    storage: str | None = None,
    base_dir: Path | None = None,
    confirm: bool = False,
) -> SearchResult:
    """:func:`rebuild_report` without the :class:`Study`: the command line's own report."""
    from compresslab.report import write_report as _write
    from compresslab.study import confirm_study, load_result

    check_storage(storage)
    rec = load_recipe(recipe)
    if confirm:
        result = confirm_study(rec, storage=storage, base_dir=base_dir)
    else:
        result = load_result(rec, storage=storage, base_dir=base_dir)
    _write(result, rec.output_dir(base_dir))
    return result


def _record_search(recipe: Recipe, result: SearchResult, base_dir: Path | None) -> None:
    """One history line: the search's own energy and the best variant it found."""
    from compresslab import history

    sessions = result.info.sessions
    best = result.best_saving()
    figures: dict[str, Any] = {"trials": len(result.trials), "measured": len(result.measured)}
    if best is not None:
        figures.update(
            {
                "best_trial": best.number,
                "energy_j_per_inference": best.energy_j_per_inference,
                "ci95_j_per_inference": best.ci95_j_per_inference,
                "ratio_vs_baseline": best.ratio_vs_baseline,
                "confirmed": to_json(best.confirmed),
                "accuracy": best.accuracy,
            }
        )
    history.record(
        recipe,
        command="search",
        variant=best.variant if best is not None else "none",
        energy_j=sum(s.energy_j for s in sessions),
        duration_s=sum(s.duration_s for s in sessions),
        provenance=sessions[-1].provenance if sessions else "estimated",
        figures=figures,
        base_dir=base_dir,
    )


def _raise_if_all_failed(result: SearchResult, report: Path) -> None:
    """A search where every trial failed has no result: say why, rather than succeed empty."""
    failed = result.failed
    if not failed or any(t.evaluated for t in result.trials):
        return
    reason, n = Counter(t.error or "no reason recorded" for t in failed).most_common(1)[0]
    baseline = any(t.is_baseline for t in failed)
    raise CompressLabError(
        f"every trial failed ({len(failed)} of {len(result.trials)}), so there is no frontier; "
        f"the most common reason ({n} trials): {reason}. "
        + (
            "The uncompressed baseline failed too: the task or the energy measurement is at "
            "fault, not a compression method. "
            if baseline
            else ""
        )
        + f"Every trial's reason is in {report}"
    )
