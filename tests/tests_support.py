"""Helpers shared by tests (imported as a plain module; pytest puts tests/ on sys.path)."""

from __future__ import annotations

import dataclasses
import multiprocessing
import multiprocessing.synchronize
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from compresslab.records import (
    CarbonIntensity,
    EnergyResult,
    Evaluation,
    PairedRatio,
    Profile,
    ProjectionSettings,
    Provenance,
    SearchResult,
    SessionEnergy,
    StudyInfo,
    TrialRecord,
)

FAST_ENERGY = {
    "sampler": "estimate",
    "batch_size": 32,
    "warmup_s": 0.0,
    "window_s": 0.05,
    "min_windows": 2,
    "max_windows": 2,
}


def small(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    """A digits recipe (as a dict) that searches in seconds and writes under ``tmp_path``."""
    recipe: dict[str, Any] = {
        "name": "small",
        "task": {"name": "digits"},
        "compression": [
            {
                "method": "prune_channels",
                "params": {"ratio": {"low": 0.1, "high": 0.6, "step": 0.1}},
            },
            {"method": "dynamic_int8"},
        ],
        "energy": dict(FAST_ENERGY),
        "search": {"trials": 5, "sampler": "random", "seed": 1},
        "output": str(tmp_path / "reports"),
    }
    recipe.update(overrides)
    return recipe


def _energy(j: float, ci: float = 0.0) -> EnergyResult:
    return EnergyResult(
        sampler="estimate",
        provenance=Provenance.ESTIMATED,
        energy_j_per_inference=j,
        std_j_per_inference=0.0,
        ci95_j_per_inference=ci,
        windows=3,
        n_inferences=300,
        batch_size=64,
        latency_s_per_batch=0.01,
        duration_s=3.0,
        window_j_per_inference=(j, j, j),
        components_j_per_inference={},
        component_provenance={},
        gross_j_per_inference=j,
        idle_power_w=0.0,
        idle_measured=False,
        update_period_s=0.0,
        window_s=1.0,
    )


def _done(
    n: int,
    variant: str,
    params: dict[str, object],
    acc: float,
    ci: tuple[float, float],
    feasible: bool,
    energy: EnergyResult,
    n_params: int,
    macs: float,
    size: int,
) -> TrialRecord:
    # Paired with the baseline (1 mJ per inference) in the trial's own span, +/-5% on the ratio.
    ratio = energy.energy_j_per_inference / 1e-3
    vs = PairedRatio(ratio=ratio, ci95_low=ratio * 0.95, ci95_high=ratio * 1.05, pairs=4)
    if n == 0:
        vs = PairedRatio(ratio=1.0, ci95_low=1.0, ci95_high=1.0, pairs=0)
    return TrialRecord(
        number=n,
        state="COMPLETE",
        variant=variant,
        is_baseline=n == 0,
        params=params,
        evaluation=Evaluation(
            metric=acc,
            metric_ci95=ci,
            energy=energy,
            vs_baseline=vs,
            modeled_j_per_inference=2e-5 * (n + 1),
            profile=Profile(n_params=n_params, macs_per_inference=macs, size_bytes=size),
        ),
        feasible=feasible,
        baseline_j=1e-3,
    )


def with_evaluation(trial: TrialRecord, **changes: Any) -> TrialRecord:
    """``trial`` with fields of its evaluation replaced (``vs_baseline``, ``quality`` ...)."""
    assert trial.evaluation is not None
    return dataclasses.replace(trial, evaluation=dataclasses.replace(trial.evaluation, **changes))


def sample_result() -> SearchResult:
    """A hand-made search result: baseline, a frontier variant, an infeasible one, a failure."""
    trials = [
        _done(
            0,
            "baseline",
            {"prune": "none"},
            0.99,
            (0.97, 1.0),
            True,
            _energy(1e-3, 1e-5),
            1000,
            5e5,
            4000,
        ),
        _done(
            1,
            "prune_channels(ratio=0.5)",
            {"prune": "prune_channels", "prune_channels.ratio": 0.5},
            0.985,
            (0.96, 0.99),
            True,
            _energy(4e-4, 1e-5),
            300,
            1.5e5,
            1500,
        ),
        _done(
            2,
            "prune_channels(ratio=0.9)",
            {"prune": "prune_channels", "prune_channels.ratio": 0.9},
            0.5,
            (0.45, 0.55),
            False,
            _energy(1e-4),
            30,
            1e4,
            300,
        ),
        TrialRecord(
            number=3,
            state="FAIL",
            variant="bf16",
            is_baseline=False,
            params={"quantize": "bf16"},
            error="VariantError: boom",
        ),
    ]
    return SearchResult(
        recipe_name="unit",
        study_name="unit",
        storage="sqlite:///x.db",
        trials=trials,
        baseline_accuracy=0.99,
        min_accuracy=0.98,
        tolerance="1 points absolute",
        info=StudyInfo(
            metric="accuracy",
            sampler_selection="estimate: used",
            sampler_metadata={"watts_per_core": "7"},
            machine={"host": "h"},
            carbon=CarbonIntensity(region="FR", intensity_g_per_kwh=55.0, source="t", pue=1.2),
            projection=ProjectionSettings(requests_per_s=100.0, price_per_kwh=0.2, currency="EUR"),
            sessions=(
                SessionEnergy(energy_j=30.0, provenance="estimated", duration_s=9.0),
                SessionEnergy(energy_j=30.0, provenance="estimated", duration_s=9.0),
            ),
            eval_examples=360,
        ),
    )


#: Seconds a command started by :func:`start_cli` may run before :func:`finish` kills it.
CLI_TIMEOUT_S = 300
#: Seconds a command run by :func:`run_cli` may take (it measures: slow on a loaded runner).
CLI_RUN_TIMEOUT_S = 900

T = TypeVar("T")


def run_cli(
    *args: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout_s: float = CLI_RUN_TIMEOUT_S,
) -> subprocess.CompletedProcess[str]:
    """``python -m compresslab ARGS`` to its end, output captured, 200 columns wide.

    ``env`` adds to (or overrides) this process's environment.
    """
    return subprocess.run(
        [sys.executable, "-m", "compresslab", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        timeout=timeout_s,
    )


def _sigint_as_a_terminal_gives_it() -> None:
    # A test run started in the background (`make test &`, nohup) ignores SIGINT, and a
    # child inherits that: Python then never raises KeyboardInterrupt. Ctrl-C at a terminal
    # reaches a process whose SIGINT is the default.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_cli(
    args: list[str],
    *,
    cwd: Path,
    env: dict[str, str] | None = None,
    command: list[str] | None = None,
) -> subprocess.Popen[str]:
    """``python -m compresslab ARGS`` (or ``command``) in ``cwd``, its output captured.

    The default environment gives the process its own measurement lock in ``cwd``.
    """
    if env is None:
        env = {**os.environ, "COMPRESSLAB_LOCK_DIR": str(cwd), "COLUMNS": "200"}
    return subprocess.Popen(
        command or [sys.executable, "-m", "compresslab", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_sigint_as_a_terminal_gives_it,
    )


def finish(proc: subprocess.Popen[str], timeout_s: float = CLI_TIMEOUT_S) -> tuple[int, str, str]:
    """Wait for ``proc`` (killed after ``timeout_s``): exit code, stdout, stderr."""
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, stdout, stderr


#: Seconds a test waits for another process or thread before it calls it stuck.
WAIT_TIMEOUT_S = 30


def _hold_host_lock(
    exclusive: bool,
    started: multiprocessing.synchronize.Event,
    release: multiprocessing.synchronize.Event,
) -> None:
    from compresslab.protocol.hostlock import host_lock

    with host_lock(exclusive=exclusive):
        started.set()
        release.wait(WAIT_TIMEOUT_S)


def lock_had_while_held(
    *,
    exclusive_other: bool,
    exclusive_mine: bool,
    within_s: float = WAIT_TIMEOUT_S,
    lock: Callable[..., AbstractContextManager[None]] | None = None,
) -> bool:
    """Whether this process has the host lock within ``within_s`` while another holds it.

    The other process (spawned) holds the lock until this one has tried for ``within_s``; then
    it lets go, and this one must have it. Told by events, not by measured seconds: a loaded
    machine can only make a wait longer. Uses ``$COMPRESSLAB_LOCK_DIR`` as the caller set it;
    ``lock`` is this side's ``host_lock`` (as a module re-exports it).
    """
    from compresslab.protocol.hostlock import host_lock

    lock = lock or host_lock

    ctx = multiprocessing.get_context("spawn")
    started, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold_host_lock, args=(exclusive_other, started, release))
    proc.start()
    got = threading.Event()

    def take() -> None:
        with lock(exclusive=exclusive_mine):
            got.set()

    taker = threading.Thread(target=take)
    try:
        assert started.wait(WAIT_TIMEOUT_S), "the other process never took the lock"
        taker.start()
        had = got.wait(within_s)
        release.set()
        assert got.wait(WAIT_TIMEOUT_S), "the lock was never had, even after the other let go"
        return had
    finally:
        release.set()
        if taker.ident is not None:
            taker.join(WAIT_TIMEOUT_S)
        proc.join(WAIT_TIMEOUT_S)


def wait_for_study(
    proc: subprocess.Popen[str],
    url: str,
    found: Callable[[Any], T | None],
    *,
    failure: str,
    study_name: str = "small",
    timeout_s: float = CLI_TIMEOUT_S,
) -> T:
    """Poll the Optuna study at ``url`` while ``proc`` runs, until ``found(study)`` is not None.

    The storage, its tables or the study may not exist yet: such errors are polled past. The
    test fails with ``failure`` after ``timeout_s``, and with the process's stderr if it ends.
    """
    import optuna

    from compresslab.study import make_storage

    storage: Any = None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the process ended (exit {proc.returncode}): {finish(proc)[2]}")
        time.sleep(0.05)
        try:
            storage = storage or make_storage(url)
            value = found(optuna.load_study(study_name=study_name, storage=storage))
        except AssertionError:
            raise
        except Exception:
            continue
        if value is not None:
            return value
    pytest.fail(failure)


def wait_for_running_trial(
    proc: subprocess.Popen[str], url: str, *, after_complete: int = 1
) -> Any:
    """A RUNNING trial that has drawn its variant, once ``after_complete`` trials completed."""

    def found(study: Any) -> Any:
        trials = study.get_trials()
        done = [t for t in trials if t.state.name == "COMPLETE"]
        running = [t for t in trials if t.state.name == "RUNNING" and "variant" in t.user_attrs]
        return running[0] if len(done) >= after_complete and running else None

    return wait_for_study(
        proc,
        url,
        found,
        failure=f"the search never had a trial running after {after_complete} completed",
    )
