"""The baseline file: a JSON record of the model when the baseline was made, and its program.

Format 2 (written by ``compresslab baseline``): the figures measured then (for the
record: nothing measured at another time decides the gate), the modeled figure and accuracy,
the machine, the recipe's hash and result-deciding fields, and ``reference``: the model's
computation saved beside the JSON as a program (``<stem>.pt2``, or ``<stem>.ts`` when only
TorchScript could capture it) with its SHA-256. The gate loads that program and measures it
paired with the candidate in the same job.

Format 3 adds the model's per-example outcomes on the held-out split (``outcomes``: right or
wrong per example, packed, :class:`compresslab.records.Outcomes`) and their count
(``accuracy_examples``), so that the gate's accuracy check compares the candidate with the
baseline on the same examples.

Formats 1 (figures only, no reference model) and 2 (no outcomes) are still read.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compresslab._version import __version__
from compresslab.errors import CompressLabError
from compresslab.fsio import atomic_write, atomic_write_text
from compresslab.records import Outcomes, from_json

if TYPE_CHECKING:
    from compresslab.check.program import Captured

BASELINE_FORMAT = 3
READABLE_FORMATS = (1, 2, 3)
_REFERENCE_KEYS = ("file", "kind", "sha256", "dynamic_batch", "batch_size")


class GateInputError(CompressLabError):
    """What the gate is given cannot be used (exit code 2): it says how to fix it."""

    exit_code = 2


class BaselineError(GateInputError):
    """The baseline file (or its program) is missing, unreadable or not a compresslab one."""


@dataclass(frozen=True)
class Snapshot:
    """One record of a model, as stored in a baseline file."""

    recipe: str
    recipe_hash: str
    variant: str
    metric: str
    accuracy: float
    sampler: str
    provenance: str
    energy_j_per_inference: float
    ci95_j_per_inference: float
    window_j_per_inference: list[float]
    modeled_j_per_inference: float
    batch_size: int
    machine: dict[str, str]
    created: str = ""
    compresslab_version: str = __version__
    format: int = BASELINE_FORMAT
    #: The recipe's fields that decide results (:func:`compresslab.recipe.result_fields`), so
    #: that a check under another recipe can say what changed; absent from older baselines.
    recipe_fields: dict[str, Any] | None = None
    #: The reference program beside the JSON (format 2): ``file`` (its name), ``kind``
    #: (``export`` or ``jit``), ``sha256``, ``dynamic_batch``, ``batch_size``, ``torch``.
    reference: dict[str, Any] | None = None
    #: The model's right/wrong per held-out example (format 3: the JSON form of
    #: :class:`compresslab.records.Outcomes`); absent from older baselines.
    outcomes: dict[str, Any] | None = None
    #: The examples ``accuracy`` was measured on (format 3); absent from older baselines.
    accuracy_examples: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (what the file holds)."""
        return asdict(self)

    def stored_outcomes(self) -> Outcomes | None:
        """The per-example outcomes (None in a baseline made before they were stored).

        Raises:
            ValueError: they do not read as outcomes
                (:class:`compresslab.records.RecordFormatError`).
        """
        return None if self.outcomes is None else from_json(Outcomes, self.outcomes)


def now() -> str:
    """The time a baseline is made (UTC, ISO 8601)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def how_to_create(path: Path, *, replace: bool = False) -> str:
    """The command that creates (``replace``: recreates) a baseline, for error messages."""
    force = " --force" if replace else ""
    return (
        f"{'recreate' if replace else 'create'} it with `compresslab baseline RECIPE --out "
        f"{path}{force}` (Python: compresslab.api.update_baseline) and commit it"
    )


def read_baseline(path: Path) -> Snapshot:
    """Load a baseline file (format 1, 2 or 3).

    Raises:
        BaselineError: missing, not JSON, or not a compresslab baseline (says how to create one).
    """
    if not path.is_file():
        raise BaselineError(f"no baseline file at {path}: {how_to_create(path)}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BaselineError(
            f"the baseline {path} is not readable JSON ({e}): {how_to_create(path, replace=True)}"
        ) from e
    if not isinstance(data, dict) or data.get("format") not in READABLE_FORMATS:
        raise BaselineError(
            f"{path} is not a compresslab baseline (format "
            f"{' or '.join(map(str, READABLE_FORMATS))}): " + how_to_create(path, replace=True)
        )
    try:
        snap = Snapshot(**data)
    except TypeError as e:
        raise BaselineError(
            f"the baseline {path} is incomplete ({e}): {how_to_create(path, replace=True)}"
        ) from e
    bad = [
        name
        for name in ("energy_j_per_inference", "modeled_j_per_inference")
        if not (isinstance(getattr(snap, name), int | float) and getattr(snap, name) > 0)
    ]
    if bad or len(snap.window_j_per_inference) < 2:
        raise BaselineError(
            f"the baseline {path} holds no usable figures ({', '.join(bad) or 'windows'}): "
            + how_to_create(path, replace=True)
        )
    try:
        snap.stored_outcomes()
    except (TypeError, ValueError) as e:  # RecordFormatError is a ValueError
        raise BaselineError(
            f"the baseline {path} holds unreadable per-example outcomes ({e}): "
            + how_to_create(path, replace=True)
        ) from e
    if snap.format >= 2:
        ref = snap.reference
        if not isinstance(ref, dict) or any(k not in ref for k in _REFERENCE_KEYS):
            raise BaselineError(
                f"the baseline {path} names no complete reference program (keys "
                f"{', '.join(_REFERENCE_KEYS)}): {how_to_create(path, replace=True)}"
            )
    return snap


def reference_path(baseline_path: Path, snap: Snapshot) -> Path:
    """Where the baseline's program lies (beside the JSON).

    Raises:
        BaselineError: the baseline has no program (format 1), or it is missing or was changed
            since the baseline was written (its SHA-256 differs).
    """
    from compresslab.export import file_sha256

    if snap.reference is None:
        raise BaselineError(
            f"the baseline {baseline_path} (format {snap.format}) carries no reference model"
        )
    path = baseline_path.parent / str(snap.reference["file"])
    if not path.is_file():
        raise BaselineError(
            f"the baseline's reference program {path} is missing: commit it with the baseline "
            f"(`compresslab baseline` writes both), or {how_to_create(baseline_path, replace=True)}"
        )
    if file_sha256(path) != snap.reference["sha256"]:
        raise BaselineError(
            f"the reference program {path} is not the one {baseline_path} was written with "
            f"(SHA-256 differs; a Git LFS pointer or a partial checkout?): restore it, or "
            + how_to_create(baseline_path, replace=True)
        )
    return path


def write_baseline(path: Path, snap: Snapshot, program: Captured | None = None) -> Snapshot:
    """Write a baseline file and, beside it, its reference program (each atomically).

    The program goes to ``<stem>.pt2`` (``torch.export``) or ``<stem>.ts`` (TorchScript) next to
    ``path`` and is recorded in the JSON with its SHA-256; a program of the other kind left
    from an earlier baseline is removed.

    Returns:
        The snapshot as written (with its ``reference`` entry).
    """
    from dataclasses import replace

    from compresslab.check.program import SUFFIX, save
    from compresslab.export import file_sha256

    if program is not None:
        target = path.with_name(path.stem + SUFFIX[program.kind])
        atomic_write(target, lambda tmp: save(program, tmp))
        for suffix in SUFFIX.values():
            stale = path.with_name(path.stem + suffix)
            if stale != target and stale.exists():
                stale.unlink()
        snap = replace(
            snap,
            reference={
                **(snap.reference or {}),
                "file": target.name,
                "kind": program.kind,
                "dynamic_batch": program.dynamic_batch,
                "sha256": file_sha256(target),
            },
        )
    atomic_write_text(path, json.dumps(snap.to_dict(), indent=2, sort_keys=True) + "\n")
    return snap
