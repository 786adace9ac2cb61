"""Checking a recipe's task, finding its provider, and running it into a usable Task."""

from __future__ import annotations

import difflib
import importlib
from pathlib import Path
from typing import Any

from compresslab.errors import CompressLabError, TaskError
from compresslab.recipe import TaskSpec
from compresslab.tasks._entrypoint import module_refusal, raised_at, resolve_entrypoint
from compresslab.tasks._registry import PATH_OPTIONS, PROVIDERS, TASK_MODULES, TaskProvider
from compresslab.tasks.base import Task
from compresslab.tasks.metrics import METRICS


def check_task(spec: TaskSpec) -> list[tuple[tuple[Any, ...], str]]:
    """What is wrong with a recipe's task that can be seen without running or importing it.

    Returns (location, message) pairs: an unknown task, an unknown option, a path option that
    points nowhere, an entrypoint naming a module that is never a task (standard library,
    compresslab, a library compresslab depends on). An entrypoint's module is imported and
    its function found by :func:`resolve_entrypoint`, called once nothing else is wrong.
    """
    if spec.entrypoint is not None:
        refusal = module_refusal(spec.entrypoint.split(":")[0])
        return [(("task", "entrypoint"), refusal)] if refusal else []
    assert spec.name is not None
    if spec.name not in PROVIDERS:
        close = difflib.get_close_matches(spec.name, list(PROVIDERS), n=1, cutoff=0.6)
        mean = f"did you mean '{close[0]}'? (" if close else ""
        return [
            (
                ("task", "name"),
                f"unknown task '{spec.name}': {mean}use one of {', '.join(PROVIDERS)}, or "
                "`entrypoint: package.module:function` for your own" + (")" if close else ""),
            )
        ]
    problems: list[tuple[tuple[Any, ...], str]] = []
    # A provider's valid options are the keys of its module's DEFAULT_OPTIONS.
    module_name = TASK_MODULES.get(spec.name)
    task_module = importlib.import_module(module_name) if module_name else None
    valid = getattr(task_module, "DEFAULT_OPTIONS", None)
    for option in sorted(set(spec.options) - set(valid or spec.options)):
        problems.append(
            (
                ("task", "options", option),
                f"task '{spec.name}' has no option '{option}': its options are "
                f"{', '.join(valid or ())}",
            )
        )
    for option in PATH_OPTIONS.get(spec.name, ()):
        value = spec.options.get(option)
        if isinstance(value, str) and value and not Path(value).expanduser().exists():
            problems.append(
                (
                    ("task", "options", option),
                    f"{value} does not exist: point `{option}` at the "
                    f"{'folder' if option.endswith('dir') else 'file or folder'} it names, "
                    "or remove the option to use the default location",
                )
            )
    return problems


def resolve_provider(spec: TaskSpec) -> TaskProvider:
    """The provider function a task spec names (imports an entrypoint's module)."""
    if spec.name is not None:
        try:
            return PROVIDERS[spec.name]
        except KeyError:
            raise TaskError(
                f"unknown task '{spec.name}': built-in tasks are {', '.join(PROVIDERS)}; "
                "or use `entrypoint: package.module:function` for your own"
            ) from None
    assert spec.entrypoint is not None
    return resolve_entrypoint(spec.entrypoint)


def load_task(spec: TaskSpec) -> Task:
    """Run the provider and check that what it returned is a usable :class:`Task`."""
    provider = resolve_provider(spec)
    try:
        task = provider(dict(spec.options))
    except CompressLabError:
        raise
    except Exception as e:  # the provider's own code (a user's build()): one line, and where
        what = f"entrypoint '{spec.entrypoint}'" if spec.entrypoint else f"task '{spec.name}'"
        raise TaskError(
            f"the {what} raised {type(e).__name__}: {e}{raised_at(e)}: fix it (run with "
            "--verbose for the traceback)"
        ) from e
    if not isinstance(task, Task):
        raise TaskError(
            f"task provider returned {type(task).__name__}, not compresslab.tasks.Task: "
            "return Task(name=..., model=..., eval_inputs=..., eval_labels=..., num_classes=...)"
        )
    if task.eval_inputs.shape[0] != task.eval_labels.shape[0]:
        raise TaskError(
            f"task '{task.name}' has {task.eval_inputs.shape[0]} eval inputs but "
            f"{task.eval_labels.shape[0]} labels: they must pair up"
        )
    if spec.metric not in METRICS:  # pragma: no cover - the recipe schema already checks
        raise TaskError(f"unknown metric '{spec.metric}'")
    task.model.eval()
    return task
