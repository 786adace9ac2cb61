"""The CI regression gate on energy per inference (``compresslab check``).

The gate measures the candidate (the recipe's model as today's code builds it, or a trial's
variant) **against a reference measured in the same job**, their windows interleaved ABBA
(:func:`compresslab.protocol.measure_paired`), and decides on the ratio's confidence interval
(:mod:`.verdict`). So it works on any runner, with or without an energy counter: the estimated
tier's noise and a load change hit both sides alike, and nothing measured at another time, on
another machine, decides.

The reference is one of:

- the **baseline's program** (``--baseline FILE``): ``compresslab baseline`` writes the baseline
  JSON and, beside it, the model's computation captured with ``torch.export`` (``<stem>.pt2``, or a
  TorchScript trace ``<stem>.ts`` when export fails), weights included (:mod:`.baseline`,
  :mod:`.program`). The candidate is captured the same way at check time, so both sides run
  the same kind of program;
- an **exported variant** (``--reference DIR``, :func:`compresslab.export.load_variant`):
  rebuilt with today's code, so both sides run eagerly;
- the model built at a **git revision** (``--reference-rev REV``, :mod:`.revision`): that
  revision's code builds and captures it in a subprocess in a temporary worktree.

Besides the energy check: the **structural check** (the deterministic modeled figure may not
rise beyond ``check.modeled_max_increase``) and the **accuracy check** (:mod:`.accuracy`): the
candidate's right/wrong per held-out example paired with the reference's (stored in the
baseline, or the reference evaluated now), the difference's interval decided ``within``,
``below`` (fails) or ``undecided`` (inconclusive) against ``check.max_accuracy_drop``.

What to run is one object: a :class:`GateRequest` for :func:`run_check` (a :class:`Verdict`),
a :class:`BaselineRequest` for :func:`update_baseline` (the :class:`Snapshot` written); the
public functions :func:`compresslab.api.energy_gate` and :func:`compresslab.api.update_baseline`
load the request's recipe and call them. Importing this package imports no torch: the modules
that run the gate import it when they run.

Exit codes: 0 pass (or inconclusive with ``check.on_inconclusive: pass``), 1 regression (or
inconclusive with ``on_inconclusive: fail``), 2 bad input (no or a corrupt baseline, stored
outcomes on other examples than today's, a reference that cannot be built or loaded, a bad
recipe).
"""

from __future__ import annotations

from compresslab.check.accuracy import AccuracyCheck
from compresslab.check.baseline import (
    BASELINE_FORMAT,
    BaselineError,
    GateInputError,
    Snapshot,
    read_baseline,
    write_baseline,
)
from compresslab.check.extras import extra_requirements, recipe_extras
from compresslab.check.gate import run_check, update_baseline
from compresslab.check.reference import recipe_warning
from compresslab.check.request import BaselineRequest, GateRequest
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
    "AccuracyCheck",
    "INCONCLUSIVE",
    "PASS",
    "REGRESSION",
    "BaselineError",
    "BaselineRequest",
    "EnergyCheck",
    "GateInputError",
    "GateRequest",
    "Measurement",
    "RevisionError",
    "Snapshot",
    "Verdict",
    "classify",
    "extra_requirements",
    "ratio_interval",
    "read_baseline",
    "recipe_extras",
    "recipe_warning",
    "run_check",
    "update_baseline",
    "write_baseline",
]
