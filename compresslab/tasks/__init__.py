"""Task providers: a registry of built-in tasks by name, plus user entrypoints.

A provider is a function ``(options: dict) -> Task``. A recipe names a built-in provider
(``task.name: digits``) or the user's own (``task.entrypoint: mypkg.tasks:build``).
An entrypoint *imports and runs that code*: only point recipes at code you trust.

Built-in providers (:data:`PROVIDERS`), each documented on its function:

- ``digits``: a small CNN on scikit-learn's 8x8 digits (:func:`~.digits.digits_task`).
- ``minilm-wordnet``: the pretrained all-MiniLM-L6-v2 with a linear head, classifying WordNet
  noun definitions by category (:func:`~.minilm.minilm_wordnet_task`).
- ``fashion-mnist``: a small CNN on Fashion-MNIST (:func:`~.fashion_mnist.fashion_mnist_task`).
- ``hf_local``: a Hugging Face sequence classifier saved in a local folder
  (:func:`~.hf_local.hf_local_task`).
- ``smollm2``: the pretrained SmolLM2-135M-Instruct causal language model, energy per
  generated token (:func:`~.smollm2.smollm2_task`).
- ``causal_lm``: your own causal language model from a local folder or a GGUF file
  (:func:`~.causal_lm.causal_lm_task`).

The entrypoint protocol. ``task.entrypoint: "package.module:function"`` imports
``package.module`` (which must be importable: installed, or in the working directory) and
calls ``function(options)`` with the recipe's ``task.options`` as a plain ``dict``. It must
return a :class:`Task`::

    from typing import Any

    from compresslab.tasks import Task, load_weights

    def build(options: dict[str, Any]) -> Task:
        model = load_weights(MyNet(width=options.get("width", 32)), options["weights"])
        x_test, y_test = ...           # held-out inputs (one tensor) and integer labels
        return Task(name="mine", model=model, eval_inputs=x_test, eval_labels=y_test,
                    num_classes=10, train_inputs=None, train_labels=None)

- ``model`` is an ``nn.Module`` called as ``model(batch)`` with a slice of ``eval_inputs``
  (any tensor type: images, token ids ...) and returning ``N x num_classes`` logits (or a
  tuple whose first element they are). It is put in eval mode; compression works on copies.
- ``eval_inputs`` and ``eval_labels`` pair up row by row; the first rows (cycled) form the
  batch whose energy is measured, so put them in a mixed order.
- ``train_inputs`` / ``train_labels`` are optional; pruning's recovery fine-tuning needs them.
- ``keep_layers`` names modules pruning must keep whole (the classifier is found by itself).
- Raise :class:`compresslab.errors.TaskError` with a message that says how to fix a problem.

:func:`load_weights` reads a ``.safetensors`` or ``torch.save`` state dict (never pickled code).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from compresslab.errors import TaskError
from compresslab.recipe import TaskSpec
from compresslab.tasks.base import Task, TaskWorkload
from compresslab.tasks.metrics import METRICS, evaluate
from compresslab.tasks.weights import load_weights

__all__ = [
    "Task",
    "TaskWorkload",
    "TaskProvider",
    "PROVIDERS",
    "resolve_provider",
    "load_task",
    "check_task",
    "evaluate",
    "load_weights",
]

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


# Options of the built-in tasks that name a file or folder, checked before any work starts.
_PATH_OPTIONS: dict[str, tuple[str, ...]] = {
    "fashion-mnist": ("data_dir",),
    "minilm-wordnet": ("wordnet_path", "encoder_path"),
    "hf_local": ("path", "data"),
    "smollm2": ("wordnet_path",),
    "causal_lm": ("path", "wordnet_path"),
}
_TASK_MODULES = {
    "digits": "compresslab.tasks.digits",
    "fashion-mnist": "compresslab.tasks.fashion_mnist",
    "minilm-wordnet": "compresslab.tasks.minilm",
    "hf_local": "compresslab.tasks.hf_local",
    "smollm2": "compresslab.tasks.smollm2",
    "causal_lm": "compresslab.tasks.causal_lm",
}


def check_task(spec: TaskSpec) -> list[tuple[tuple[Any, ...], str]]:
    """What is wrong with a recipe's task that can be seen without running it.

    Returns (location, message) pairs: an unknown task, an entrypoint module that cannot be
    found, an unknown option, a path option that points nowhere.
    """
    import importlib.util

    if spec.entrypoint is not None:
        module = spec.entrypoint.split(":")[0]
        try:  # finds the module without running it (its parent packages are imported)
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if found:
            return []
        return [
            (
                ("task", "entrypoint"),
                f"cannot find the module '{module}' of the entrypoint: make it importable "
                "(install it, or run from the folder that holds it)",
            )
        ]
    assert spec.name is not None
    if spec.name not in PROVIDERS:
        return [
            (
                ("task", "name"),
                f"unknown task '{spec.name}': use one of {', '.join(PROVIDERS)}, or "
                "`entrypoint: package.module:function` for your own",
            )
        ]
    problems: list[tuple[tuple[Any, ...], str]] = []
    # A provider's valid options are the keys of its module's DEFAULT_OPTIONS.
    module_name = _TASK_MODULES.get(spec.name)
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
    for option in _PATH_OPTIONS.get(spec.name, ()):
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
