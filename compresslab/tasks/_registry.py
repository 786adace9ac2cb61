"""The built-in task providers by name, and what is checked of their options before any work.

Each provider imports its module, and that module's heavy packages, on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from compresslab.tasks.base import Task

#: A task provider: the recipe's ``task.options`` in, a :class:`Task` out.
TaskProvider = Callable[[dict[str, Any]], Task]


def _digits(options: dict[str, Any]) -> Task:
    from compresslab.tasks.digits import digits_task

    return digits_task(options)


def _minilm_wordnet(options: dict[str, Any]) -> Task:
    from compresslab.tasks.minilm import minilm_wordnet_task

    return minilm_wordnet_task(options)


def _fashion_mnist(options: dict[str, Any]) -> Task:
    from compresslab.tasks.fashion_mnist import fashion_mnist_task

    return fashion_mnist_task(options)


def _hf_local(options: dict[str, Any]) -> Task:
    from compresslab.tasks.hf_local import hf_local_task

    return hf_local_task(options)


def _smollm2(options: dict[str, Any]) -> Task:
    from compresslab.tasks.smollm2 import smollm2_task

    return smollm2_task(options)


def _causal_lm(options: dict[str, Any]) -> Task:
    from compresslab.tasks.causal_lm import causal_lm_task

    return causal_lm_task(options)


#: Built-in providers by name (each imports its module, and its heavy packages, on first use).
PROVIDERS: dict[str, TaskProvider] = {
    "digits": _digits,
    "minilm-wordnet": _minilm_wordnet,
    "fashion-mnist": _fashion_mnist,
    "hf_local": _hf_local,
    "smollm2": _smollm2,
    "causal_lm": _causal_lm,
}


#: Options of the built-in tasks that name a file or folder, checked before any work starts.
PATH_OPTIONS: dict[str, tuple[str, ...]] = {
    "fashion-mnist": ("data_dir",),
    "minilm-wordnet": ("wordnet_path", "encoder_path"),
    "hf_local": ("path", "data"),
    "smollm2": ("wordnet_path",),
    "causal_lm": ("path", "wordnet_path"),
}
#: The module of each built-in task (its ``DEFAULT_OPTIONS`` are the task's valid options).
TASK_MODULES = {
    "digits": "compresslab.tasks.digits",
    "fashion-mnist": "compresslab.tasks.fashion_mnist",
    "minilm-wordnet": "compresslab.tasks.minilm",
    "hf_local": "compresslab.tasks.hf_local",
    "smollm2": "compresslab.tasks.smollm2",
    "causal_lm": "compresslab.tasks.causal_lm",
}
