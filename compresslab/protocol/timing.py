"""The time each part of a variant's evaluation takes: wall seconds, CPU seconds, memory.

:class:`~compresslab.bench.VariantBench` times every evaluation with a :class:`PartTimer`;
a search records it with the trial (``parts``) and prices it like a measurement window.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from compresslab.machine import rss_bytes
from compresslab.records import PartTime

if TYPE_CHECKING:
    from torch import nn

    from compresslab.compress import VariantSpec

#: The parts of one variant's evaluation whose time
#: :meth:`~compresslab.bench.VariantBench.evaluate` records (``parts``): building it (pruning,
#: quantizing), recovery fine-tuning, evaluating it (screening, accuracy, profile, operation
#: counts) and measuring its energy.
PARTS = ("build", "finetune", "evaluate", "measure")


class PartTimer:
    """Wall seconds and process CPU seconds per part of an evaluation (see :data:`PARTS`).

    :meth:`lap` charges the time since the previous lap (or :meth:`mark`) to a part. Each part
    also keeps the largest resident memory seen at its laps (``rss_gb``), so that a caller can
    price it as the ``estimate`` sampler prices a window (CPU-seconds x watts per core plus
    resident GB x watts per GB x wall seconds).
    """

    def __init__(self) -> None:
        self.parts: dict[str, dict[str, float]] = {}
        self.mark()

    def mark(self) -> None:
        """Start the next lap now (time before it is charged to no part)."""
        self._mark = (time.perf_counter(), time.process_time())

    def add(self, name: str, *, wall_s: float, cpu_s: float) -> None:
        """Add seconds to part ``name`` (negative amounts move time out of it)."""
        part = self.parts.setdefault(name, {"wall_s": 0.0, "cpu_s": 0.0, "rss_gb": 0.0})
        part["wall_s"] = max(0.0, part["wall_s"] + wall_s)
        part["cpu_s"] = max(0.0, part["cpu_s"] + cpu_s)
        part["rss_gb"] = max(part["rss_gb"], rss_bytes() / 1e9)

    def lap(self, name: str) -> None:
        """Charge the time since the last lap to part ``name``."""
        wall0, cpu0 = self._mark
        self.mark()
        self.add(name, wall_s=self._mark[0] - wall0, cpu_s=self._mark[1] - cpu0)

    def build(self, build: Callable[[VariantSpec], nn.Module], spec: VariantSpec) -> nn.Module:
        """``build(spec)`` as part ``build``, its recovery fine-tuning as part ``finetune``.

        The compression methods have no timing hook, and recovery is the only part of a build
        that steps an optimizer, so torch's global optimizer-step hook delimits it: for each
        optimizer, the span from its first step to its last, scaled by n / (n - 1) for the
        iteration before the first step (a single step is too short to tell).
        """
        from torch.optim.optimizer import register_optimizer_step_post_hook

        spans: list[list[Any]] = []  # [optimizer (weak), first (wall, cpu), last, steps]

        def on_step(optimizer: Any, _args: Any, _kwargs: Any) -> None:
            now = (time.perf_counter(), time.process_time())
            if not spans or spans[-1][0]() is not optimizer:
                spans.append([weakref.ref(optimizer), now, now, 0])
            spans[-1][2] = now
            spans[-1][3] += 1

        self.mark()
        handle = register_optimizer_step_post_hook(on_step)
        try:
            return build(spec)
        finally:
            handle.remove()
            self.lap("build")
            wall = cpu = 0.0
            for _, first, last, steps in spans:
                if steps > 1:
                    wall += (last[0] - first[0]) * steps / (steps - 1)
                    cpu += (last[1] - first[1]) * steps / (steps - 1)
            if wall > 0:
                self.add("build", wall_s=-wall, cpu_s=-cpu)
                self.add("finetune", wall_s=wall, cpu_s=cpu)

    def to_dict(self) -> dict[str, dict[str, float]]:
        """JSON-able copy (a session's parts)."""
        return {k: dict(v) for k, v in self.parts.items()}

    def times(self) -> dict[str, PartTime]:
        """The parts so far, typed (what a trial's evaluation holds as ``parts``)."""
        return {k: PartTime(**v) for k, v in self.parts.items()}
