"""``pynvml`` as it behaves on a machine without an NVIDIA driver, for the suite's subprocesses.

The ``hidden_nvml`` fixture (tests/conftest.py) copies this file to ``pynvml.py`` in a folder
of its own and puts that folder first on ``PYTHONPATH``, so a ``python -m compresslab`` that a
test starts imports it as ``pynvml`` (it is not named so here, where mypy and editors would
take it for the real module). It loads the
installed nvidia-ml-py and replaces itself with it, except that ``nvmlInit`` raises
``NVMLError_LibraryNotFound``, as the real one does when ``libnvidia-ml.so.1`` is missing.
In the test process itself the fixture patches the same two functions instead.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
_elsewhere = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
_spec = importlib.machinery.PathFinder.find_spec("pynvml", _elsewhere)
if _spec is None or _spec.loader is None:
    raise ImportError("No module named 'pynvml' (and the test suite hides NVML anyway)")
_real: Any = importlib.util.module_from_spec(_spec)
# pynvml adds its NVMLError_* classes to sys.modules[__name__] while it loads, so it must be
# registered first; the import statement then returns it in place of this file.
sys.modules[__name__] = _real
_spec.loader.exec_module(_real)


def _no_driver(*args: Any, **kwargs: Any) -> None:
    raise _real.NVMLError(_real.NVML_ERROR_LIBRARY_NOT_FOUND)


_real.nvmlInit = _no_driver
_real.nvmlInitWithFlags = _no_driver
_real.HIDDEN_BY_COMPRESSLAB_TESTS = True
