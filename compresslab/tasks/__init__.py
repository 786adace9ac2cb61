"""Task providers: a registry of built-in tasks by name, plus user entrypoints.

A provider is a function ``(options: dict) -> Task``. A recipe names a built-in provider
(``task.name: digits``) or the user's own (``task.entrypoint: mypkg.tasks:build``).
An entrypoint *imports and runs that code*: only point recipes at code you trust.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, cast

from compresslab.errors import TaskError
from compresslab.recipe import TaskSpec
from compresslab.tasks.base import Task
from compresslab.tasks.metrics import METRICS, evaluate

__all__ = ["Task", "TaskProvider", "PROVIDERS", "resolve_provider", "load_task", "evaluate"]

TaskProvider = Callable[[dict[str, Any]], Task]


def _digits(options: dict[str, Any]) -> Task:
    from compresslab.tasks.digits import digits_task

    return digits_task(options)


#: Built-in providers by name.
PROVIDERS: dict[str, TaskProvider] = {"digits": _digits}


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
    module_name, func_name = spec.entrypoint.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise TaskError(
            f"cannot import module '{module_name}' of entrypoint '{spec.entrypoint}' ({e}): "
            "make it importable (install it, or run from the directory that holds it)"
        ) from e
    func = getattr(module, func_name, None)
    if not callable(func):
        raise TaskError(
            f"module '{module_name}' has no function '{func_name}': check the entrypoint's name"
        )
    return cast(TaskProvider, func)


def load_task(spec: TaskSpec) -> Task:
    """Run the provider and check that what it returned is a usable :class:`Task`."""
    provider = resolve_provider(spec)
    task = provider(dict(spec.options))
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
