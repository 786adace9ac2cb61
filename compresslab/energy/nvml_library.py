"""The NVML library (``pynvml``), imported lazily, with its errors translated where they enter.

``pynvml`` (the ``nvidia-ml-py`` package) is imported through :func:`_nvml`, the one seam the
tests replace with a fake module. :func:`load_nvml` and :func:`init_nvml` raise
:class:`BackendUnavailableError` when NVML cannot run here; :func:`shutdown_nvml` never raises.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from compresslab.errors import BackendUnavailableError

logger = logging.getLogger(__name__)

_NO_LIBRARY = (
    "NVML library not found: no NVIDIA driver on this machine (libnvidia-ml.so.1 is missing); "
    "install the NVIDIA driver, or in a container run with the NVIDIA container toolkit "
    "(`--gpus all`), or use `sampler: rapl` / `sampler: estimate`"
)


def _nvml() -> Any:
    """Import and return ``pynvml`` (tests replace this function with a fake module)."""
    import pynvml

    return pynvml


def load_nvml() -> Any:
    """The ``pynvml`` module.

    Raises:
        BackendUnavailableError: ``pynvml`` cannot be imported (the message says what to install).
    """
    try:
        return _nvml()
    except ImportError as e:
        raise BackendUnavailableError(
            f"cannot import pynvml ({e}): install the nvidia-ml-py package "
            "(`pip install nvidia-ml-py`), a dependency of compresslab"
        ) from e


def init_nvml(nv: Any) -> None:
    """Initialise NVML (pair every call with :func:`shutdown_nvml`).

    Raises:
        BackendUnavailableError: no NVIDIA driver, or NVML failed to start (the message says
            how to check the driver).
    """
    try:
        nv.nvmlInit()
    except nv.NVMLError_LibraryNotFound as e:
        raise BackendUnavailableError(_NO_LIBRARY) from e
    except nv.NVMLError as e:
        raise BackendUnavailableError(
            f"nvmlInit failed ({e}): check that the NVIDIA driver is loaded (`nvidia-smi`), "
            "or use `sampler: rapl` / `sampler: estimate`"
        ) from e


def shutdown_nvml(nv: Any) -> None:
    """Shut NVML down; a failure is logged, never raised."""
    try:
        nv.nvmlShutdown()
    except nv.NVMLError as e:  # shutting down cannot make a reading wrong
        logger.debug("nvmlShutdown failed: %s", e)


def optional_query(nv: Any, query: Callable[..., Any], *args: Any) -> Any:
    """Run an informational NVML query; a failure only leaves the field out (None)."""
    try:
        return query(*args)
    except (nv.NVMLError, AttributeError) as e:
        logger.debug("optional NVML query %s failed: %s", getattr(query, "__name__", query), e)
        return None


def as_text(value: Any) -> str:
    """An NVML string (``bytes`` in older ``pynvml`` releases) as ``str``."""
    return value.decode() if isinstance(value, bytes) else str(value)
