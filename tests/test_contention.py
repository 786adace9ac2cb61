from __future__ import annotations

import time
from pathlib import Path

import pytest

from compresslab.protocol import contention


def _stat(path: Path, user: int, system: int, idle: int, steal: int) -> Path:
    path.write_text(f"cpu  {user} 0 {system} {idle} 0 0 0 {steal} 0 0\ncpu0 1 2 3 4\n")
    return path


@pytest.mark.slow
def test_foreign_busy_time_is_the_machine_minus_this_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hz = contention._ticks_per_s()
    stat = tmp_path / "stat"
    a = contention.snapshot(_stat(stat, 0, 0, 0, 0))
    assert a is not None
    time.sleep(0.2)
    # 1.5 CPU-seconds busy machine-wide and 0.1 s stolen over the sleep; this process slept.
    b = contention.snapshot(_stat(stat, int(1.0 * hz), int(0.5 * hz), 100, int(0.1 * hz)))
    c = contention.between(a, b, cpus=2)
    assert c is not None
    wall = b.wall_s - a.wall_s
    own = b.process_s - a.process_s
    assert c.foreign_cpus == pytest.approx((1.5 - own) / wall, rel=0.05)
    assert c.steal_frac == pytest.approx(0.1 / (wall * 2), rel=0.05)


def test_missing_proc_stat_gives_no_figure(tmp_path: Path) -> None:
    assert contention.snapshot(tmp_path / "absent") is None
    assert contention.between(None, None, cpus=2) is None
    (tmp_path / "odd").write_text("intr 1 2 3\n")
    assert contention.snapshot(tmp_path / "odd") is None


@pytest.mark.slow
def test_a_busy_sibling_process_is_seen(tmp_path: Path) -> None:
    import subprocess
    import sys

    start = contention.snapshot()
    if start is None:
        pytest.skip("no /proc/stat on this system")
    spin = subprocess.Popen(
        [sys.executable, "-c", "import time\nt=time.time()\nwhile time.time()-t<1.0: pass"]
    )
    spin.wait()
    seen = contention.between(start, contention.snapshot(), cpus=2)
    assert seen is not None and seen.foreign_cpus > 0.3
