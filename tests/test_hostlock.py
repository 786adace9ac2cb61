from __future__ import annotations

from pathlib import Path

import pytest
from tests_support import lock_had_while_held

pytestmark = pytest.mark.slow


def test_builders_share_the_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMPRESSLAB_LOCK_DIR", str(tmp_path))
    assert lock_had_while_held(exclusive_other=False, exclusive_mine=False)


def test_a_measurement_waits_for_a_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMPRESSLAB_LOCK_DIR", str(tmp_path))
    assert not lock_had_while_held(exclusive_other=False, exclusive_mine=True, within_s=0.5)


def test_a_build_waits_for_a_measurement(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMPRESSLAB_LOCK_DIR", str(tmp_path))
    assert not lock_had_while_held(exclusive_other=True, exclusive_mine=False, within_s=0.5)
