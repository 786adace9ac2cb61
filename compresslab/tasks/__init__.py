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
``package.module`` (which must be importable: installed, or in the current folder, which is
searched first as ``python -m`` does) and calls ``function(options)`` with the recipe's
``task.options`` as a plain ``dict``. It must return a :class:`Task`. Both are found when the
recipe is checked, before any work: the module is imported then (its top level runs), the
function only when the search starts. A module of Python's standard library, of compresslab or
of a library compresslab depends on is refused without being imported, and so is a function
that the module only re-exports from elsewhere (``from subprocess import run``)::

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

import difflib
import importlib
import importlib.util
import inspect
import os
import pkgutil
import sys
import sysconfig
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from compresslab.errors import CompressLabError, TaskError
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
    "resolve_entrypoint",
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


#: Top-level modules of the libraries compresslab depends on (and of the tools around it). A
#: function of theirs is never a task, and importing one to check a recipe runs its code for
#: nothing: an entrypoint naming one is refused before any import.
LAB_DEPENDENCIES = frozenset(
    {
        "torch", "torchvision", "torchaudio", "torchao", "torch_pruning", "bitsandbytes",
        "pynvml", "optuna", "pandas", "numpy", "pydantic", "pydantic_core", "yaml",
        "matplotlib", "plotly", "pyarrow", "sklearn", "scipy", "typer", "click", "rich",
        "transformers", "tokenizers", "huggingface_hub", "safetensors", "sqlalchemy",
        "alembic", "jinja2", "psycopg", "IPython", "ipykernel", "nbclient", "nbformat",
        "pip", "setuptools", "pkg_resources", "pytest", "_pytest",
    }
)  # fmt: skip


def _module_refusal(module: str) -> str | None:
    """Why ``module`` is not a user's task module, judged by its name alone (None: it may be)."""
    top = module.split(".")[0]
    fix = (
        "point the entrypoint at a function in your own module (`package.module:build`); "
        "nothing was imported"
    )
    if top.startswith("__"):
        return f"'{module}' is not a module of yours: {fix}"
    if top in sys.stdlib_module_names:
        return f"'{top}' is a module of Python's standard library, not a task: {fix}"
    if top == "compresslab":
        return f"'{module}' is part of compresslab itself, not a task: {fix}"
    if top in LAB_DEPENDENCIES:
        return f"'{top}' is a library compresslab depends on, not a task: {fix}"
    return None


def _cwd_importable() -> None:
    """Put the current folder first on the import path, as ``python -m`` does.

    The ``compresslab`` command's own folder is on the path instead, so a user's package in
    the folder they run from would not be found.
    """
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    importlib.invalidate_caches()  # modules written since the last import are seen


def _where(error: BaseException) -> str:
    """`` (file:line)`` of where ``error`` was raised (a SyntaxError: where the code is)."""
    if isinstance(error, SyntaxError) and error.filename:
        return f" ({error.filename}:{error.lineno})"
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return ""
    # The deepest frame in the user's code, not in a library it called (torch, the stdlib).
    libraries = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    libraries.add(str(Path(__file__).resolve().parents[1]))
    own = [f for f in frames if not any(f.filename.startswith(p) for p in libraries)]
    frame = (own or frames)[-1]
    return f" ({frame.filename}:{frame.lineno})"


def _close_module(module: str) -> str:
    """`` (did you mean 'x'?)`` for a module name that may be misspelt, else ''."""
    parent, _, leaf = module.rpartition(".")
    try:
        if parent:
            path = getattr(importlib.import_module(parent), "__path__", None)
            names = [f"{parent}.{m.name}" for m in pkgutil.iter_modules(path)] if path else []
        else:
            names = [m.name for m in pkgutil.iter_modules()]
    except Exception:  # the user's parent package failed to import: no suggestion
        return ""
    close = difflib.get_close_matches(module, names, n=1, cutoff=0.75)
    return f" (did you mean '{close[0]}'?)" if close else ""


def resolve_entrypoint(entrypoint: str) -> TaskProvider:
    """Import an entrypoint's module and find its function, without calling it.

    Raises:
        TaskError: the module is refused (standard library, compresslab, a library compresslab
            depends on), cannot be found, raises while it is imported, or has no such function
            of its own. The message says which, where, and how to fix it.
    """
    module_name, func_name = entrypoint.split(":")
    refusal = _module_refusal(module_name)
    if refusal:
        raise TaskError(refusal)
    _cwd_importable()
    try:
        # Finds the module without running it (its parent packages are imported).
        found = importlib.util.find_spec(module_name) is not None
    except (ImportError, ValueError):
        found = False
    except Exception as e:  # a parent package of the user's raised while it was imported
        raise TaskError(
            f"importing the entrypoint's package for '{module_name}' raised "
            f"{type(e).__name__}: {e}{_where(e)}: fix it; run with --verbose for the traceback"
        ) from e
    if not found:
        raise TaskError(
            f"cannot find the module '{module_name}' of the entrypoint"
            f"{_close_module(module_name)}: make it importable (install it, or run from the "
            f"folder that holds it; the current folder, {os.getcwd()}, is searched first)"
        )
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # the user's module: any error while its top level runs
        raise TaskError(
            f"importing '{module_name}', the entrypoint's module, raised {type(e).__name__}: "
            f"{e}{_where(e)}: fix the module; run with --verbose for the traceback"
        ) from e
    func = getattr(module, func_name, None)
    if func is None:
        own = [n for n, v in vars(module).items() if inspect.isfunction(v)]
        close = difflib.get_close_matches(func_name, own, n=1, cutoff=0.6)
        mean = f": did you mean '{close[0]}'?" if close else ""
        raise TaskError(
            f"module '{module_name}' has no function '{func_name}'{mean} (check the "
            "entrypoint's name)"
        )
    if not inspect.isfunction(func):
        raise TaskError(
            f"'{entrypoint}' is a {type(func).__name__}, not a function: define "
            f"`def {func_name}(options): ... return Task(...)` in {module_name}"
        )
    home = str(getattr(func, "__module__", "") or "")
    if home.split(".")[0] != module_name.split(".")[0]:
        raise TaskError(
            f"'{entrypoint}' is {home}.{func.__qualname__}, defined in '{home}', not a function "
            f"of '{module_name}': define `def build(options): ... return Task(...)` in "
            f"{module_name} and point the entrypoint at it"
        )
    return cast(TaskProvider, func)


def check_task(spec: TaskSpec) -> list[tuple[tuple[Any, ...], str]]:
    """What is wrong with a recipe's task that can be seen without running or importing it.

    Returns (location, message) pairs: an unknown task, an unknown option, a path option that
    points nowhere, an entrypoint naming a module that is never a task (standard library,
    compresslab, a library compresslab depends on). An entrypoint's module is imported and
    its function found by :func:`resolve_entrypoint`, called once nothing else is wrong.
    """
    if spec.entrypoint is not None:
        refusal = _module_refusal(spec.entrypoint.split(":")[0])
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
            f"the {what} raised {type(e).__name__}: {e}{_where(e)}: fix it (run with "
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
