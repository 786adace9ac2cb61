"""A user's task entrypoint (``package.module:function``): refused, found and imported safely.

See :mod:`compresslab.tasks` for the entrypoint protocol.
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
from pathlib import Path
from typing import cast

from compresslab.errors import TaskError
from compresslab.tasks._registry import TaskProvider

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


def module_refusal(module: str) -> str | None:
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


def raised_at(error: BaseException) -> str:
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
    refusal = module_refusal(module_name)
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
            f"{type(e).__name__}: {e}{raised_at(e)}: fix it; run with --verbose for the traceback"
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
            f"{e}{raised_at(e)}: fix the module; run with --verbose for the traceback"
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
