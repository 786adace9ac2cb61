from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest

from compresslab.protocol.hostlock import host_lock


def _hold(exclusive: bool, seconds: float, started: multiprocessing.synchronize.Event) -> None:
    with host_lock(exclusive=exclusive):
        started.set()
        time.sleep(seconds)


def _wait_for(exclusive_other: bool, exclusive_mine: bool) -> float:
    ctx = multiprocessing.get_context("spawn")
    started = ctx.Event()
    proc = ctx.Process(target=_hold, args=(exclusive_other, 1.0, started))
    proc.start()
    try:
        assert started.wait(30)
        t0 = time.perf_counter()
        with host_lock(exclusive=exclusive_mine):
            waited = time.perf_counter() - t0
    finally:
        proc.join(30)
    return waited


def test_builders_share_the_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMPRESSLAB_LOCK_DIR", str(tmp_path))
    assert _wait_for(exclusive_other=False, exclusive_mine=False) < 0.3


def test_a_measurement_waits_for_a_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMPRESSLAB_LOCK_DIR", str(tmp_path))
    assert _wait_for(exclusive_other=False, exclusive_mine=True) > 0.5


def test_a_build_waits_for_a_measurement(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMPRESSLAB_LOCK_DIR", str(tmp_path))
    assert _wait_for(exclusive_other=True, exclusive_mine=False) > 0.5
