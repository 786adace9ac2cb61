"""The public Python API (re-exported from :mod:`compresslab`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from compresslab.errors import CompressLabError, RecipeError, UsageError
from compresslab.recipe import Recipe, RecipeSource, parse_recipe, read_source, storage_problem
from compresslab.recipe import source_from_text as _source_from_text
from compresslab.records import Measurement, SearchInterrupted, SearchResult, TrialRecord, to_json

log = logging.getLogger(__name__)


def _validated(source: RecipeSource) -> Recipe:
    """The recipe, checked in full before any work; every problem found is raised at once."""
    recipe = parse_recipe(source)  # the form first: a malformed recipe never imports torch
    # The registries of methods and tasks import torch: loaded here, not with the package.
    from compresslab.compress import check_space
    from compresslab.energy.cuda import device_problem
    from compresslab.errors import TaskError
    from compresslab.tasks import check_task, resolve_entrypoint

    # A GPU torch cannot reach is refused here, before a task loads (a CPU-only torch build,
    # no device N): otherwise the model would run on the CPU while an idle GPU is measured.
    device = device_problem(recipe.energy.device)
    if device is not None:
        raise source.error(("energy", "device"), device)
    space = check_space(recipe.compression)
    problems = space + check_task(recipe.task) + _thread_problems(recipe)
    if not space:
        problems += _grid_problems(recipe)
    if problems:
        errors = [source.error(loc, message) for loc, message in problems]
        raise RecipeError.combine(sorted(errors, key=lambda e: e.line or 0))
    if recipe.task.entrypoint is not None:
        # Only now, with nothing else wrong: the user's module is imported (its top level
        # runs) and its function found; the function runs when the search starts.
        try:
            resolve_entrypoint(recipe.task.entrypoint)
        except TaskError as e:
            raise source.error(("task", "entrypoint"), str(e)) from e
    return recipe


def _thread_problems(recipe: Recipe) -> list[tuple[tuple[Any, ...], str]]:
    """Thread counts above the CPUs this process may use.

    Refused rather than warned about: a measurement never runs more threads than those CPUs,
    so such a variant would be labelled with one thread count and measured with another.
    """
    from compresslab.machine import logical_cpus
    from compresslab.recipe import ParamChoices, ParamRange

    cpus = logical_cpus()
    found: list[tuple[tuple[Any, ...], Any]] = []
    if recipe.energy.threads is not None:
        found.append((("energy", "threads"), [recipe.energy.threads]))
    spec = recipe.runtime.threads
    if spec is not None:
        values = (
            [spec.low, spec.high]
            if isinstance(spec, ParamRange)
            else list(spec.choices)
            if isinstance(spec, ParamChoices)
            else [spec]
        )
        found.append((("runtime", "threads"), values))
    problems = []
    for loc, values in found:
        over = [v for v in values if isinstance(v, int) and not isinstance(v, bool) and v > cpus]
        if over:
            problems.append(
                (
                    loc,
                    f"{max(over)} threads is more than the {cpus} CPUs this process may use: a "
                    f"measurement runs at most {cpus} threads, so the result would be labelled "
                    f"with a thread count it was not measured with; valid on this machine: "
                    f"integer in [1, {cpus}]",
                )
            )
    return problems


def _grid_problems(recipe: Recipe) -> list[tuple[tuple[Any, ...], str]]:
    """An exhaustive grid that cannot be listed (no step, or too many variants)."""
    if recipe.search.sampler != "grid":
        return []  # the other samplers never list the space (auto counts it first)
    from compresslab.study.space import MAX_GRID, grid_too_big, recipe_grid_size

    loc = ("search", "sampler")
    try:
        size = recipe_grid_size(recipe.compression, recipe.runtime)
    except RecipeError as e:
        return [(loc, str(e).removeprefix("field 'search.sampler': "))]
    return [(loc, grid_too_big(size))] if size > MAX_GRID else []


class _NoAliasDumper(yaml.SafeDumper):
    """Writes an object shared by two places twice: a recipe has no aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _dict_text(source: Mapping[str, Any]) -> str:
    try:
        return yaml.dump(dict(source), Dumper=_NoAliasDumper)
    except RecursionError:
        raise RecipeError(
            "the recipe dict refers to itself: give each section its own value",
            path="<dict>",
        ) from None
    except yaml.YAMLError as e:
        raise RecipeError(
            f"the recipe dict holds a value YAML cannot write ({e}): use plain text, numbers, "
            "true/false, None, lists and dicts",
            path="<dict>",
        ) from e


def load_recipe(source: str | Path | Mapping[str, Any]) -> Recipe:
    """Load and fully validate a recipe from a YAML file path or a dict.

    Raises:
        RecipeError: the recipe is invalid; the message names the file, line, field and fix
            of every problem, one per line.
    """
    if isinstance(source, Mapping):
        return _validated(_source_from_text(_dict_text(source), path="<dict>"))
    return _validated(read_source(source))


def search(
    recipe: Recipe | str | Path,
    *,
    trials: int | None = None,
    storage: str | None = None,
    base_dir: Path | None = None,
    on_trial: Callable[[TrialRecord, int, int], None] | None = None,
    write_report: bool = True,
    fresh: bool = False,
) -> SearchResult:
    """Run (or resume) a recipe's search and write its report.

    A study is resumed only under the recipe it was created with, as far as the fields that
    decide results go (:data:`compresslab.recipe.RESULT_FIELDS`); ``search.trials``, names,
    storage, output and report settings may change.

    Args:
        recipe: a :class:`Recipe` or a path to its YAML.
        trials: number of completed trials to reach (default: the recipe's ``search.trials``).
        storage: Optuna storage URL (default: the recipe's, else SQLite under the report folder).
        base_dir: folder the recipe's relative ``output`` is resolved against.
        on_trial: progress callback ``(record, completed, target)``.
        write_report: write ``trials.csv``, ``pareto.png`` and ``report.md``.
        fresh: delete the recipe's study from its storage (every trial) and start over.

    Raises:
        RecipeError: the recipe is invalid, or (``RecipeChangedError``) its study was created
            under other values of a field that decides results; nothing was run.
    """
    from compresslab.report import write_report as _write
    from compresslab.study import run_search

    _check_storage(storage)
    _check_trials(trials)
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    try:
        result = run_search(
            recipe,
            trials=trials,
            storage=storage,
            base_dir=base_dir,
            on_trial=on_trial,
            fresh=fresh,
        )
    except SearchInterrupted as stop:
        # Ctrl-C: the report shows what was completed; the interrupt goes on up.
        if write_report and stop.result is not None and stop.result.trials:
            try:
                _write(stop.result, recipe.output_dir(base_dir))
            except Exception as e:  # the interrupt matters more than the report
                log.warning("report not written after the interrupt: %s", e)
        raise
    if write_report:
        _write(result, recipe.output_dir(base_dir))
    _record_search(recipe, result, base_dir)
    _raise_if_all_failed(result, recipe.output_dir(base_dir) / "report.md")
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


def _check_storage(storage: str | None) -> None:
    problem = storage_problem(storage) if storage is not None else None
    if problem:
        raise UsageError(f"--storage: {problem}; see docs/fleet.md")


def _check_trials(trials: int | None) -> None:
    from compresslab.recipe import SearchSpec

    high = next(m.le for m in SearchSpec.model_fields["trials"].metadata if hasattr(m, "le"))
    if trials is not None and (isinstance(trials, bool) or not 1 <= trials <= high):
        raise UsageError(
            f"--trials: {trials!r} is outside [1, {high}]: give a budget in that range"
        )


def _raise_if_all_failed(result: SearchResult, report: Path) -> None:
    """A search where every trial failed has no result: say why, rather than succeed empty."""
    from collections import Counter

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


def rebuild_report(
    recipe: Recipe | str | Path,
    *,
    storage: str | None = None,
    base_dir: Path | None = None,
    confirm: bool = False,
) -> SearchResult:
    """Rebuild a recipe's report from its study storage alone.

    With ``confirm``, the frontier is first measured again paired with the baseline (the task
    is loaded and variants are rebuilt); without it no model is loaded or run.
    """
    from compresslab.report import write_report as _write
    from compresslab.study import confirm_study, load_result

    _check_storage(storage)
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    if confirm:
        result = confirm_study(recipe, storage=storage, base_dir=base_dir)
    else:
        result = load_result(recipe, storage=storage, base_dir=base_dir)
    _write(result, recipe.output_dir(base_dir))
    return result


def measure_model(
    model: Any,
    inputs: Any,
    *,
    sampler: str = "auto",
    device: str = "cpu",
    protocol: Any = None,
    threads: int | None = None,
    repeatability: bool = True,
) -> Any:
    """Measure energy per inference of ``model`` on the batch ``inputs`` (repeated windows).

    Args:
        model: a ``torch.nn.Module``.
        inputs: one input batch (a tensor); every row is one inference.
        sampler: ``auto``, ``rapl``, ``nvml``, ``estimate`` or ``model``.
        device: where the model runs (decides ``auto``'s order).
        protocol: a :class:`compresslab.protocol.Protocol` (default: its defaults).
        threads: torch intra-op threads during the measurement.
        repeatability: widen the interval by this machine's measured repeatability between
            measurements and add the figure to this model's history
            (:mod:`compresslab.protocol.repeatability`); False: the windows' interval only,
            nothing recorded.

    Returns:
        A :class:`compresslab.protocol.EnergyResult` (mean, CI, provenance, windows, ...);
        ``repeatability_source`` says how its interval was made.
    """
    from compresslab.energy import select_sampler
    from compresslab.protocol import measure_model as _measure
    from compresslab.protocol.repeatability import model_key, standalone

    selection = select_sampler(sampler, device=device)
    result = _measure(model, inputs, sampler=selection.sampler, protocol=protocol, threads=threads)
    if not repeatability:
        return result
    key, label = model_key(model, inputs, threads)
    return standalone(result, key=key, label=label)


def measure_recipe(
    recipe: Recipe | str | Path,
    *,
    trial: int | None = None,
    storage: str | None = None,
    base_dir: Path | None = None,
) -> Measurement:
    """Measure a recipe's baseline model, or the variant of one trial of its study.

    Returns the :class:`~compresslab.records.Measurement` (its ``evaluation`` holds the
    energy, the paired ratio for a variant, and the metric); ``to_json()`` is what
    ``compresslab measure --json`` prints.
    """
    from compresslab.study import measure_trial

    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    result = measure_trial(recipe, trial=trial, storage=storage, base_dir=base_dir)
    record_measurement(recipe, result, command="measure", base_dir=base_dir)
    return result


def record_measurement(
    recipe: Recipe, result: Measurement, *, command: str, base_dir: Path | None = None
) -> None:
    """One history line for a measurement (what ``measure --json`` prints)."""
    from compresslab import history
    from compresslab.records import to_json

    ev = result.evaluation
    energy = ev.energy
    n = energy.n_inferences
    history.record(
        recipe,
        command=command,
        variant=result.variant,
        energy_j=energy.energy_j_per_inference * n,
        duration_s=energy.duration_s,
        provenance=str(energy.provenance),
        ci95_j=energy.ci95_j_per_inference * n,
        components_j={k: v * n for k, v in energy.components_j_per_inference.items()},
        figures={
            "energy_j_per_inference": energy.energy_j_per_inference,
            "ci95_j_per_inference": energy.ci95_j_per_inference,
            "sampler": energy.sampler,
            "windows": energy.windows,
            "trial": result.trial,
            "vs_baseline": to_json(ev.vs_baseline),
            recipe.task.metric: ev.metric,
            "ci_target_met": energy.ci_target_met,
            "systematic_rel": energy.systematic_rel,
            "contended": energy.contended,
        },
        base_dir=base_dir,
    )


def compare(
    a: str | Path,
    b: str | Path,
    *,
    study_a: str | None = None,
    study_b: str | None = None,
    force: bool = False,
) -> Any:
    """Two stored studies side by side (see :mod:`compresslab.report.compare`).

    Args:
        a: a report folder holding ``study.db``, a ``.db`` file or a storage URL.
        b: the same for the second study.
        study_a: the study's name in ``a`` when it holds several.
        study_b: likewise for ``b``.
        force: divide absolute figures of different provenance anyway (said so).

    Returns:
        A :class:`compresslab.report.compare.Comparison` (``.frame()``, ``.markdown()``).
    """
    from compresslab.report.compare import compare_results
    from compresslab.study import load_stored_result

    return compare_results(
        load_stored_result(a, study_name=study_a),
        load_stored_result(b, study_name=study_b),
        force=force,
    )


def export_trial(
    recipe: Recipe | str | Path,
    *,
    trial: int,
    out_dir: str | Path,
    storage: str | None = None,
    base_dir: Path | None = None,
    force: bool = False,
) -> Path:
    """Export trial ``trial``'s variant of a recipe's study as a reproducible artefact.

    ``compresslab.export.load_variant(out_dir, task=...)`` rebuilds it with the same outputs;
    it checks every file against the artefact's manifest first. ``force`` replaces an existing
    folder and exports a screened-out or failed trial.
    """
    from compresslab.study import export_trial as _export

    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    return _export(
        recipe, trial=trial, out_dir=Path(out_dir), storage=storage, base_dir=base_dir, force=force
    )


def energy_gate(
    recipe: Recipe | str | Path,
    *,
    baseline: str | Path | None = None,
    reference: str | Path | None = None,
    reference_rev: str | None = None,
    update: bool = False,
    trial: int | None = None,
    storage: str | None = None,
    base_dir: Path | None = None,
    pairs: int | None = None,
) -> Any:
    """The CI gate (``compresslab check``): the candidate against a reference measured now.

    Args:
        recipe: the recipe (its path lets ``reference_rev`` read the task as it was there).
        baseline: the baseline JSON; its program beside it is the reference. With ``update``,
            both are (re)written from the current model instead.
        reference: a ``compresslab export`` folder to compare with instead.
        reference_rev: a git revision whose code builds the reference instead.
        update: write the baseline (and its program) rather than gate.
        trial: gate this trial's variant of the recipe's study (default: the baseline model).
        storage: the study's storage URL (with ``trial``).
        base_dir: folder the recipe's relative ``output`` is resolved against.
        pairs: pairs of interleaved windows (default: ``check.pairs``).

    Returns:
        A :class:`compresslab.check.Verdict` (``exit_code``: 0 pass, 1 regression), or with
        ``update`` the :class:`compresslab.check.Snapshot` written.

    Raises:
        GateInputError: no reference or an unusable one (exit code 2).
    """
    from compresslab.check import GateInputError, run_check, update_baseline

    recipe_path = None if isinstance(recipe, Recipe) else Path(recipe)
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    if update:
        if baseline is None or reference is not None or reference_rev is not None:
            raise GateInputError("--update writes a baseline: give --baseline FILE, and only it")
        return update_baseline(
            recipe, baseline_path=Path(baseline), trial=trial, storage=storage, base_dir=base_dir
        )
    return run_check(
        recipe,
        baseline_path=Path(baseline) if baseline is not None else None,
        reference_dir=Path(reference) if reference is not None else None,
        reference_rev=reference_rev,
        recipe_path=recipe_path,
        trial=trial,
        storage=storage,
        base_dir=base_dir,
        pairs=pairs,
    )
