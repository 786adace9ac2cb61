from __future__ import annotations

import multiprocessing.process
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from compresslab.energy import rapl as rapl_module

# platform.platform() asks `uname -p` in a subprocess once, then caches it: ask here, before the
# fast lane's guard forbids subprocesses (machine.fingerprint reads it).
platform.platform()

REPO = Path(__file__).resolve().parents[1]
# Shared helpers (tests_support.py) import as a plain module under --import-mode=importlib.
sys.path.insert(0, str(Path(__file__).resolve().parent))


# One intra-op thread per test process: on a 2-core runner, subprocess workers and the test
# process would otherwise oversubscribe the cores (tiny-model training gets ~20x slower).
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)


# --- the fast lane ------------------------------------------------------------------------------
#
# ``make test-fast`` runs the tests not marked ``slow``: no subprocess, no sleep, no trained
# model, no real search. So that lane cannot grow slow unnoticed, a test without the marker that
# starts a process, sleeps, trains a task's model or asks for a trained one fails with what to
# do. (A real search or a long computation cannot be caught so: ``make test-fast`` lists the
# slowest tests.)

#: The marker of the slow lane (declared in pyproject.toml).
SLOW = "slow"
#: The longest sleep a fast test may take (code under test polls with sleeps of a few ms).
FAST_SLEEP_MAX_S = 0.005
#: Fixtures that train a model (once per session, seconds): only slow tests may use them.
TRAINING_FIXTURES = ("digits_task", "minilm_small")
_CALL_FAILED = pytest.StashKey[bool]()


def _not_in_the_fast_lane(what: str) -> None:
    # pytest.fail raises a BaseException: it crosses `except Exception` boundaries (a trial's).
    pytest.fail(
        f"{what} in a test not marked slow: mark it `@pytest.mark.{SLOW}` (it then runs in "
        "`make test`, not in `make test-fast`), or use a fake",
        pytrace=False,
    )


def _refuse_training(monkeypatch: pytest.MonkeyPatch, refused: Callable[..., Any]) -> None:
    """Patch the tasks' training loop where it is defined and wherever it was imported."""
    try:
        from compresslab.tasks import training
    except ImportError:  # moved: the durations list still shows a test that trains
        return
    real = training.train_classifier
    for name, module in list(sys.modules.items()):
        if name.startswith("compresslab") and getattr(module, "train_classifier", None) is real:
            monkeypatch.setattr(module, "train_classifier", refused)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A fast test asking for a trained model fails before the model is trained."""
    if item.get_closest_marker(SLOW) is None:
        for name in TRAINING_FIXTURES:
            if name in getattr(item, "fixturenames", ()):
                _not_in_the_fast_lane(f"the fixture {name} (it trains a model)")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Remember whether a test's call failed (the fast-lane guard reads it at teardown)."""
    report = yield
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed
    return report


@pytest.fixture(autouse=True)
def _fast_lane_guard(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """In a test not marked slow: starting a process, a sleep above a few ms or training fails.

    Session- and module-scoped fixtures are set up before this one and are not held to it
    (:func:`pytest_runtest_setup` refuses the ones that train).
    """
    if request.node.get_closest_marker(SLOW) is not None:
        yield
        return
    refused: list[str] = []

    def refuse(what: str) -> Callable[..., Any]:
        def refused_call(*args: Any, **kwargs: Any) -> Any:
            refused.append(what)
            _not_in_the_fast_lane(what)

        return refused_call

    real_sleep = time.sleep

    def short_sleep(seconds: float) -> None:
        if seconds > FAST_SLEEP_MAX_S:
            refuse(f"time.sleep({seconds!r})")()
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", short_sleep)
    monkeypatch.setattr(subprocess.Popen, "__init__", refuse("starting a subprocess"))
    monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", refuse("starting a process"))
    for name in ("fork", "forkpty", "system", "posix_spawn", "posix_spawnp"):
        if hasattr(os, name):
            monkeypatch.setattr(os, name, refuse(f"os.{name}"))
    _refuse_training(monkeypatch, refuse("training a model (train_classifier)"))
    yield
    if refused and not request.node.stash.get(_CALL_FAILED, False):
        _not_in_the_fast_lane(f"{refused[0]} (caught by the code under test)")


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Trained models and the measurement lock live in a per-session folder."""
    cache = tmp_path_factory.mktemp("cache")
    os.environ["COMPRESSLAB_CACHE_DIR"] = str(cache)
    os.environ["COMPRESSLAB_LOCK_DIR"] = str(cache)


@pytest.fixture(autouse=True)
def repeatability_store(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """This machine's repeatability store: empty, per test (also for subprocesses).

    A standalone measurement is widened by what earlier measurements and studies on the
    machine taught; a test starts with nothing learnt, whatever the tests before it measured.
    """
    from compresslab.protocol.repeatability import ENV

    folder = tmp_path_factory.mktemp("repeatability")
    monkeypatch.setenv(ENV, str(folder))
    return folder


# --- the host's hardware, hidden ---------------------------------------------------------------
#
# Every test runs as on a machine without RAPL and without an NVIDIA driver, whatever the host
# has; a test sees RAPL or NVML only when it asks for a fake one (tests/energy/conftest.py:
# ``powercap_env`` points the sampler at a fake powercap tree, ``fake_nvml`` patches in a fake
# pynvml; both request the hiding fixture below and override it).

#: Installed as ``pynvml.py`` first on a subprocess's PYTHONPATH: NVML as without a driver.
PYNVML_WITHOUT_DRIVER = Path(__file__).resolve().parent / "pynvml_without_driver.py"


@pytest.fixture(scope="session")
def no_nvidia_driver_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder whose ``pynvml.py`` is :data:`PYNVML_WITHOUT_DRIVER`, for ``PYTHONPATH``."""
    folder = tmp_path_factory.mktemp("no-nvidia-driver")
    shutil.copyfile(PYNVML_WITHOUT_DRIVER, folder / "pynvml.py")
    return folder


@pytest.fixture(autouse=True)
def hidden_rapl(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """RAPL hidden: ``COMPRESSLAB_POWERCAP_ROOT`` is an empty folder (no ``intel-rapl`` zone).

    Set in the environment, so subprocesses (the CLI) see the same. Returns the empty folder.
    """
    root = tmp_path_factory.mktemp("no-powercap")
    monkeypatch.setenv(rapl_module.ROOT_ENV, str(root))
    return root


def _no_driver(*args: Any, **kwargs: Any) -> None:
    import pynvml

    raise pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)


@pytest.fixture(autouse=True)
def hidden_nvml(no_nvidia_driver_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """NVML hidden: ``pynvml.nvmlInit`` fails as it does without an NVIDIA driver.

    ``compresslab.energy.nvml`` imports ``pynvml`` lazily and calls ``nvmlInit`` on it, so the
    real module is patched in place (its names and error classes stay real). Subprocesses
    import the same behaviour from :data:`PYNVML_WITHOUT_DRIVER` through ``PYTHONPATH``.
    """
    before = os.environ.get("PYTHONPATH")
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(p for p in (str(no_nvidia_driver_path), before) if p)
    )
    try:
        import pynvml
    except ImportError:  # not installed: NVML cannot run anyway
        yield
        return
    monkeypatch.setattr(pynvml, "nvmlInitWithFlags", _no_driver)
    monkeypatch.setattr(pynvml, "nvmlInit", _no_driver)
    yield


@pytest.fixture(scope="session")
def digits_task():  # type: ignore[no-untyped-def]
    """The real digits task (the CNN is trained once per test session)."""
    from compresslab.tasks.digits import digits_task as build

    return build({})


@pytest.fixture
def repo() -> Path:
    """The repository root (recipes/ lives there)."""
    return REPO
