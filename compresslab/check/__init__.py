"""The CI regression gate on energy per inference (``compresslab check``).

The gate measures the candidate (the recipe's model as today's code builds it, or a trial's
variant) **against a reference measured in the same job**, their windows interleaved ABBA
(:func:`compresslab.protocol.measure_paired`), and decides on the ratio's confidence interval
(:mod:`.verdict`). So it works on any runner, with or without an energy counter: the estimated
tier's noise and a load change hit both sides alike, and nothing measured at another time, on
another machine, decides.

The reference is one of:

- the **baseline's program** (``--baseline FILE``): ``check --update`` writes the baseline JSON
  and, beside it, the model's computation captured with ``torch.export`` (``<stem>.pt2``, or a
  TorchScript trace ``<stem>.ts`` when export fails), weights included (:mod:`.baseline`,
  :mod:`.program`). The candidate is captured the same way at check time, so both sides run
  the same kind of program;
- an **exported variant** (``--reference DIR``, :func:`compresslab.export.load_variant`):
  rebuilt with today's code, so both sides run eagerly;
- the model built at a **git revision** (``--reference-rev REV``, :mod:`.revision`): that
  revision's code builds and captures it in a subprocess in a temporary worktree.

Besides the energy check: the **structural check** (the deterministic modeled figure may not
rise beyond ``check.modeled_max_increase``) and the **accuracy check**
(``check.max_accuracy_drop``), both on the same reference.

Exit codes: 0 pass (or inconclusive with ``check.on_inconclusive: pass``), 1 regression (or
inconclusive with ``on_inconclusive: fail``), 2 bad input (no or a corrupt baseline, a reference
that cannot be built or loaded, a bad recipe).
"""

from __future__ import annotations

from typing import Any

from compresslab.check.baseline import (
    BASELINE_FORMAT,
    BaselineError,
    GateInputError,
    Snapshot,
    read_baseline,
    write_baseline,
)
from compresslab.check.extras import recipe_extras
from compresslab.check.revision import RevisionError
from compresslab.check.verdict import (
    INCONCLUSIVE,
    PASS,
    REGRESSION,
    EnergyCheck,
    Measurement,
    Verdict,
    classify,
    ratio_interval,
)

__all__ = [
    "BASELINE_FORMAT",
    "INCONCLUSIVE",
    "PASS",
    "REGRESSION",
    "BaselineError",
    "EnergyCheck",
    "GateInputError",
    "Measurement",
    "RevisionError",
    "Snapshot",
    "Verdict",
    "classify",
    "ratio_interval",
    "read_baseline",
    "recipe_extras",
    "recipe_warning",
    "run_check",
    "update_baseline",
    "write_baseline",
]

# Running the gate needs torch; `compresslab check --print-extras` and reading baselines do not.
_GATE = ("recipe_warning", "run_check", "update_baseline")


def __getattr__(name: str) -> Any:
    if name in _GATE:
        from compresslab.check import gate

        return getattr(gate, name)
    raise AttributeError(f"module 'compresslab.check' has no attribute {name!r}")
