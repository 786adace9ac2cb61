"""The public Python API (re-exported from :mod:`compresslab`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from compresslab.errors import CompressLabError, RecipeError, UsageError
from compresslab.recipe import Recipe, RecipeSource, parse_recipe, read_source, storage_problem
from compresslab.recipe import source_from_text as _source_from_text
from compresslab.records import Measurement, SearchInterrupted, SearchResult, TrialRecord

if TYPE_CHECKING:
    from compresslab.check import BaselineRequest, GateRequest, Snapshot, Verdict
    from compresslab.export import ExportRequest

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

    sessions = result.info.get("search_energy") or []
    best = result.best_saving()
    figures: dict[str, Any] = {"trials": len(result.trials), "measured": len(result.measured)}
    if best is not None:
        figures.update(
            {
                "best_trial": best.number,
                "energy_j_per_inference": best.energy_j_per_inference,
                "ci95_j_per_inference": best.ci95_j_per_inference,
                "ratio_vs_baseline": best.ratio_vs_baseline,
                "confirmed": best.confirmed,
                "accuracy": best.accuracy,
            }
        )
    history.record(
        recipe,
        command="search",
        variant=best.variant if best is not None else "none",
        energy_j=sum(float(s.get("energy_j") or 0.0) for s in sessions),
        duration_s=sum(float(s.get("duration_s") or 0.0) for s in sessions),
        provenance=str(sessions[-1].get("provenance")) if sessions else "estimated",
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


def _loaded(recipe: Recipe | str | Path | Mapping[str, Any]) -> Recipe:
    """A request's recipe, loaded and checked (a :class:`Recipe` as it is)."""
    return recipe if isinstance(recipe, Recipe) else load_recipe(recipe)


def export_trial(request: ExportRequest) -> Path:
    """Export a trial's variant of a recipe's study as a reproducible artefact.

    What ``compresslab export`` runs. ``compresslab.export.load_variant(request.out_dir,
    task=...)`` rebuilds it with the same outputs; it checks every file against the artefact's
    manifest first.

    Args:
        request: the recipe, the trial, the folder and what may be replaced or exported
            (:class:`compresslab.export.ExportRequest`).

    Returns:
        The folder written.

    Raises:
        UsageError: the folder exists and ``request.replace`` is not set, or the trial was not
            measured (screened out, failed) and ``request.allow_unmeasured`` is not set.
        VariantError: the reloaded artefact would not reproduce the variant's outputs.
    """
    from compresslab.study import export_trial as _export

    return _export(request.with_recipe(_loaded(request.recipe)))


def energy_gate(request: GateRequest) -> Verdict:
    """The CI gate (``compresslab check``): the candidate against a reference measured now.

    Args:
        request: the recipe, exactly one reference (a baseline file, an exported variant or a
            git revision), the trial and the pairs (:class:`compresslab.check.GateRequest`).

    Returns:
        The :class:`compresslab.check.Verdict` (``exit_code``: 0 pass, 1 regression;
        ``to_dict()``, ``markdown()``).

    Raises:
        GateInputError: an unusable reference, e.g. a missing or corrupt baseline (exit code 2).
    """
    from compresslab.check import run_check

    return run_check(request.with_recipe(_loaded(request.recipe)))


def update_baseline(request: BaselineRequest) -> Snapshot:
    """Write the gate's baseline (``compresslab baseline``): the model's figures and its program.

    Args:
        request: the recipe, the baseline file to write, the trial, and whether an existing
            baseline may be replaced (:class:`compresslab.check.BaselineRequest`).

    Returns:
        The :class:`compresslab.check.Snapshot` written (its ``reference`` names the program).

    Raises:
        GateInputError: the file exists and ``request.replace`` is not set, or the model can be
            captured neither by torch.export nor by tracing (exit code 2).
    """
    from compresslab.check import update_baseline as _update

    return _update(request.with_recipe(_loaded(request.recipe)))
