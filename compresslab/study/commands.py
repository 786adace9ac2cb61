"""One-off commands on a recipe's stored study: read it back, re-measure or export a trial."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from compresslab.bench import Runtime, VariantBench, baseline_outcomes, tolerance_of
from compresslab.compress import VariantSpec
from compresslab.errors import StorageError, UsageError
from compresslab.recipe import Recipe
from compresslab.records import Measurement, SearchResult, accuracy_vs_baseline
from compresslab.study import attrs
from compresslab.study.records import result_from_study, spec_of_trial
from compresslab.study.storage import default_storage, open_study
from compresslab.tasks import load_task

if TYPE_CHECKING:
    from compresslab.export import ExportRequest


def storage_of(recipe: Recipe, storage: str | None = None, base_dir: Path | None = None) -> str:
    """The storage URL a command uses: ``storage``, else the recipe's, else the default."""
    return storage or recipe.search.storage or default_storage(recipe, base_dir)


def load_result(
    recipe: Recipe, *, storage: str | None = None, base_dir: Path | None = None
) -> SearchResult:
    """Rebuild a recipe's search result from its study storage (no model is loaded)."""
    storage_url = storage_of(recipe, storage, base_dir)
    if storage_url.startswith("sqlite:///"):
        path = Path(storage_url.removeprefix("sqlite:///"))
        if not path.is_file():
            raise StorageError(
                f"no study database at {path}: run `compresslab search` on the recipe first, "
                "or give its storage (--storage URL; storage= in Python)"
            )
    return result_from_study(recipe, open_study(recipe, storage=storage_url), storage_url)


def trial_variant(
    recipe: Recipe, trial: int, *, storage: str | None = None, base_dir: Path | None = None
) -> tuple[VariantSpec, Runtime]:
    """The variant trial ``trial`` of the recipe's study built, and how it was run."""
    study = open_study(recipe, storage=storage_of(recipe, storage, base_dir))
    return spec_of_trial(study, trial)


def measure_trial(
    recipe: Recipe,
    *,
    trial: int | None = None,
    storage: str | None = None,
    base_dir: Path | None = None,
) -> Measurement:
    """Measure the recipe's baseline (or the variant of ``trial`` in its study) once more.

    A trial that was predicted dominated instead of measured is measured like any other; its
    prediction is returned beside the measurement (``prediction``: ``ratio`` predicted, to
    compare with the measured ``vs_baseline``), so the prediction can be checked.
    """
    spec, runtime = VariantSpec(), Runtime()
    prediction = None
    if trial is not None:
        study = open_study(recipe, storage=storage_of(recipe, storage, base_dir))
        spec, runtime = spec_of_trial(study, trial)
        frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == trial)
        prediction = attrs.read(frozen).prediction
    bench = VariantBench(recipe=recipe, task=load_task(recipe.task))
    # A measurement on its own: its absolute figure states the machine's repeatability too.
    evaluation = bench.evaluate(spec, runtime=runtime, standalone=True)
    claim = None
    # A variant's accuracy against the baseline's outcomes on the same examples, in the same
    # batches: a paired claim (right/wrong outcomes decide an accuracy tolerance only).
    outcomes = evaluation.outcomes if recipe.task.metric == "accuracy" else None
    if outcomes is not None and not spec.is_baseline:
        base_outcomes = baseline_outcomes(bench)
        claim = accuracy_vs_baseline(
            outcomes, base_outcomes, tolerance=tolerance_of(bench, base_outcomes)
        )
    return Measurement(
        energy=evaluation.energy,
        recipe=recipe.name,
        variant=spec.label() + runtime.label(),
        trial=trial,
        metric_name=recipe.task.metric,
        evaluation=evaluation,
        selection=bench.selection.explain(),
        prediction=prediction,
        accuracy_vs_baseline=claim,
    )


def export_trial(request: ExportRequest) -> Path:
    """Write a trial's variant as a reproducible artefact (see :mod:`compresslab.export`).

    The variant is rebuilt from the base model (building is deterministic), checked to reload
    to the same outputs, and written with its measured figures. A variant that was not
    measured (screened out, predicted dominated, failed) is exported only with
    ``request.allow_unmeasured``; an existing folder is replaced only with ``request.replace``.

    Raises:
        UsageError: the trial was not measured and ``allow_unmeasured`` is not set, or the
            folder exists and ``replace`` is not set.
    """
    from compresslab.export import export_variant

    recipe, trial = request.loaded_recipe, request.trial
    study = open_study(recipe, storage=storage_of(recipe, request.storage, request.base_dir))
    spec, _ = spec_of_trial(study, trial)
    frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == trial)
    stored = attrs.read(frozen)
    if frozen.state.name != "COMPLETE" and not request.allow_unmeasured:
        why = stored.screening.reason if stored.screening else stored.error or "no result"
        raise UsageError(
            f"trial {trial} is {frozen.state.name.lower()} ({why}): it is not a measured "
            "variant; export another trial, or pass --allow-unmeasured "
            "(allow_unmeasured=True) to export it anyway"
        )
    bench = VariantBench(recipe=recipe, task=load_task(recipe.task))
    measured = None
    if stored.evaluation is not None:
        measured = Measurement(
            energy=stored.evaluation.energy,
            recipe=recipe.name,
            variant=stored.variant or "?",
            trial=trial,
            metric_name=recipe.task.metric,
            evaluation=stored.evaluation,
            selection="as measured during the search",
        ).to_json()
        measured["runtime"] = dict(stored.runtime)
    return export_variant(
        task=bench.task,
        spec=spec,
        ctx=bench.ctx,
        recipe_dict=recipe.model_dump(mode="json"),
        out_dir=request.out_dir,
        measured=measured,
        replace=request.replace,
    )


def confirm_study(
    recipe: Recipe,
    *,
    storage: str | None = None,
    base_dir: Path | None = None,
    pairs: int | None = None,
) -> SearchResult:
    """Re-measure a stored study's frontier paired with the baseline (see :mod:`.confirm`).

    Every frontier variant is measured again, also those confirmed before (a later session
    may run on a quieter or busier machine: the newest confirmation is the one shown).
    """
    from compresslab.protocol.hostlock import host_lock
    from compresslab.study.confirm import confirm_claims

    result = load_result(recipe, storage=storage, base_dir=base_dir)
    storage_url = result.storage
    study = open_study(recipe, storage=storage_url)
    with host_lock(exclusive=False):
        bench = VariantBench(recipe=recipe, task=load_task(recipe.task))
    confirm_claims(
        study,
        bench,
        min_accuracy=result.min_accuracy,
        pairs=pairs or max(recipe.search.confirm_pairs, recipe.energy.min_windows),
        again=True,
    )
    from compresslab.study.learning import learn_ratio_repeatability

    learn_ratio_repeatability(study, storage_url)
    return result_from_study(recipe, study, storage_url)


def load_stored_result(location: str | Path, *, study_name: str | None = None) -> SearchResult:
    """A finished study read back from its storage alone, with the recipe it stored.

    Args:
        location: a report folder holding ``study.db``, a ``.db`` file, or a storage URL.
        study_name: the study to read when the storage holds several.

    Raises:
        UsageError: nothing readable there, or several studies and no ``study_name``.
        StorageError: the study stores no recipe (made by an older version: open it with its
            recipe instead, e.g. ``compresslab report RECIPE``).
    """
    from compresslab.recipe import Recipe
    from compresslab.study._optuna import load_optuna
    from compresslab.study.storage import RECIPE_ATTR, make_storage
    from compresslab.study.storage_errors import storage_error

    path = Path(location)
    if path.is_dir():
        path = path / "study.db"
    if path.suffix == ".db" or path.is_file():
        if not path.is_file():
            raise UsageError(f"no study database at {path}: pass a report folder, a .db or a URL")
        url = f"sqlite:///{path.resolve()}"
    else:
        url = str(location)
    optuna = load_optuna()
    try:
        storage = make_storage(url)
        names = [s.study_name for s in optuna.get_all_study_summaries(storage=storage)]
    except Exception as e:  # sqlalchemy, its drivers and optuna raise many kinds
        raise storage_error(e, storage=url) from e
    if study_name is None:
        if len(names) != 1:
            raise UsageError(
                f"{location} holds {len(names)} studies ({', '.join(names) or 'none'}): "
                "name one (--study-a/--study-b, or study_a=/study_b= in Python)"
            )
        study_name = names[0]
    elif study_name not in names:
        raise UsageError(f"{location} holds no study '{study_name}' (it has {', '.join(names)})")
    study = optuna.load_study(study_name=study_name, storage=storage)
    stored = study.user_attrs.get(RECIPE_ATTR)
    if stored is None:
        raise StorageError(
            f"study '{study_name}' in {location} stores no recipe (an older compresslab made "
            "it): read it with its recipe, `compresslab report RECIPE --storage URL`"
        )
    from compresslab.recipe import result_fields

    result = result_from_study(Recipe.model_validate(stored), study, url)
    info = dataclasses.replace(result.info, recipe_fields=result_fields(stored))
    return dataclasses.replace(result, info=info)
