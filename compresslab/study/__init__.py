"""The Optuna multi-objective search (the only package that imports optuna).

Objectives: maximize the task metric, minimize energy per inference. The accuracy tolerance is
a constraint (``Trial.set_constraint``, :func:`.objective.constraint`: at most 0 when the
variant's accuracy is decided within the tolerance on the same examples as the baseline's), which
the NSGA-II and TPE samplers use and ``study.best_trials`` honours. The uncompressed baseline is
enqueued as the first trial. The study lives in a storage on disk (SQLite under the report
folder by default), so running the same command again resumes it and runs only the trials
still missing.

Modules, each with one job:

- :mod:`.space`: the recipe's compression space as trial parameters (and its grid);
- :mod:`.samplers`: which Optuna sampler a recipe gets;
- :mod:`.storage`: opening a study in SQLite, a journal file or an RDB; the recipe a study was
  created with; :mod:`.storage_errors` says what a storage failure means and what to do, and
  :mod:`.journal` keeps a journal file whole when a write is cut short;
- :mod:`.workers` and :mod:`.heartbeat`: which process runs a trial, its heartbeats, and
  failing (then retrying) the trials of dead workers;
- :mod:`.objective`: one trial, and the boundary that turns any error into a failed trial;
- :mod:`.records`: reading a study back as plain records;
- :mod:`.sessions`: the search's own energy, one checkpointed entry per session;
- :mod:`.run`: the search loop;
- :mod:`.confirm`: the frontier measured again, paired with the baseline, after the search;
- :mod:`.commands`: re-measuring, confirming or exporting trials of a stored study.

Building and measuring a variant is :mod:`compresslab.bench`'s job, not this package's.
"""

from __future__ import annotations

from compresslab.study.commands import (
    confirm_study,
    export_trial,
    load_result,
    load_stored_result,
    measure_trial,
    storage_of,
    trial_variant,
)
from compresslab.study.heartbeat import TrialWatch
from compresslab.study.objective import Objective, failure_reason
from compresslab.study.records import (
    counts_towards_budget,
    records_from_study,
    result_from_study,
    spec_of_trial,
    trial_record,
)
from compresslab.study.run import run_search
from compresslab.study.samplers import make_optuna_sampler, sampler_name
from compresslab.study.sessions import sessions_of
from compresslab.study.space import SearchSpace
from compresslab.study.storage import (
    RecipeChangedError,
    default_storage,
    delete_study,
    guard_recipe,
    make_storage,
    open_study,
)

__all__ = [
    "Objective",
    "RecipeChangedError",
    "confirm_study",
    "SearchSpace",
    "counts_towards_budget",
    "default_storage",
    "delete_study",
    "export_trial",
    "TrialWatch",
    "failure_reason",
    "guard_recipe",
    "load_result",
    "load_stored_result",
    "make_optuna_sampler",
    "make_storage",
    "measure_trial",
    "open_study",
    "records_from_study",
    "result_from_study",
    "run_search",
    "sampler_name",
    "sessions_of",
    "spec_of_trial",
    "storage_of",
    "trial_record",
    "trial_variant",
]
