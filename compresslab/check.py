"""The CI regression gate on energy per inference (``compresslab check``).

A baseline file (JSON, committed next to the code) records one measurement of a recipe's model:
the windows of the energy measurement with their provenance, the deterministic modeled figure,
the accuracy, and the machine's fingerprint. ``check`` measures the model again and compares:

- **measured / integrated tier** (a hardware counter on both sides, same machine): Welch's
  t-test over the windows, one-sided, plus a tolerance: a regression is a rise larger than
  ``check.max_increase`` *and* significant at ``check.alpha``. Noise alone does not fail a build.
- **modeled tier** (no counter here, or a different machine): the analytic figure, which is
  deterministic for a given architecture and batch size, compared exactly (up to
  ``check.modeled_max_increase``). The estimated figure is shown for information only.
- **accuracy**, when ``check.max_accuracy_drop`` is set.

Exit codes: 0 pass, 1 regression, 2 bad input (missing or corrupt baseline, bad recipe).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from compresslab._version import __version__
from compresslab.errors import CompressLabError, UsageError
from compresslab.fsio import atomic_write_text
from compresslab.machine import fingerprint
from compresslab.recipe import Recipe

BASELINE_FORMAT = 1
_COUNTER_TIERS = ("measured", "integrated")
# Float rounding of (joules x calls) / calls: the modeled figure is otherwise deterministic.
_MODELED_RTOL = 1e-9


class BaselineError(CompressLabError):
    """The baseline file is missing, unreadable or not a compresslab baseline."""

    exit_code = 2


@dataclass(frozen=True)
class Snapshot:
    """One measurement of a model, as stored in (and compared with) a baseline file."""

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

    @classmethod
    def from_measurement(cls, recipe: Recipe, result: dict[str, Any]) -> Snapshot:
        """A snapshot from :func:`compresslab.study.measure_trial`'s result."""
        from compresslab.recipe import recipe_hash, result_fields

        return cls(
            recipe=recipe.name,
            recipe_hash=recipe_hash(recipe),
            variant=result["variant"],
            metric=recipe.task.metric,
            accuracy=float(result[recipe.task.metric]),
            sampler=result["sampler"],
            provenance=result["provenance"],
            energy_j_per_inference=float(result["energy_j_per_inference"]),
            ci95_j_per_inference=float(result["ci95_j_per_inference"]),
            window_j_per_inference=[float(v) for v in result["window_j_per_inference"]],
            modeled_j_per_inference=float(result["modeled_j_per_inference"]),
            batch_size=int(result["batch_size"]),
            machine=fingerprint(),
            created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            recipe_fields=result_fields(recipe.model_dump(mode="json")),
        )


def _how_to_create(path: Path) -> str:
    return f"create one with `compresslab check RECIPE --baseline {path} --update` and commit it"


def read_baseline(path: Path) -> Snapshot:
    """Load a baseline file.

    Raises:
        BaselineError: missing, not JSON, or not a compresslab baseline (says how to create one).
    """
    if not path.is_file():
        raise BaselineError(f"no baseline file at {path}: {_how_to_create(path)}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BaselineError(
            f"the baseline {path} is not readable JSON ({e}): {_how_to_create(path)}"
        ) from e
    if not isinstance(data, dict) or data.get("format") != BASELINE_FORMAT:
        raise BaselineError(
            f"{path} is not a compresslab baseline (format {BASELINE_FORMAT}): "
            + _how_to_create(path)
        )
    try:
        snap = Snapshot(**data)
    except TypeError as e:
        raise BaselineError(
            f"the baseline {path} is incomplete ({e}): {_how_to_create(path)}"
        ) from e
    bad = [
        name
        for name in ("energy_j_per_inference", "modeled_j_per_inference")
        if not (isinstance(getattr(snap, name), int | float) and getattr(snap, name) > 0)
    ]
    if bad or len(snap.window_j_per_inference) < 2:
        raise BaselineError(
            f"the baseline {path} holds no usable figures ({', '.join(bad) or 'windows'}): "
            + _how_to_create(path)
        )
    return snap


def write_baseline(path: Path, snap: Snapshot) -> None:
    """Write a baseline file atomically."""
    atomic_write_text(path, json.dumps(asdict(snap), indent=2, sort_keys=True) + "\n")


def same_machine(a: dict[str, str], b: dict[str, str]) -> bool:
    """True when two fingerprints name the same host and CPU."""
    return all(a.get(k) == b.get(k) for k in ("host", "cpu_model", "logical_cpus"))


def welch_p_greater(current: list[float], baseline: list[float]) -> float:
    """One-sided p-value of Welch's t-test that ``current``'s mean exceeds ``baseline``'s."""
    from scipy import stats

    if statistics.pstdev(current) == 0 and statistics.pstdev(baseline) == 0:
        return 0.0 if statistics.fmean(current) > statistics.fmean(baseline) else 1.0
    res = stats.ttest_ind(current, baseline, equal_var=False, alternative="greater")
    return float(res.pvalue)


@dataclass
class Verdict:
    """The gate's decision and everything that explains it."""

    passed: bool
    tier: str
    ratio: float
    baseline_j_per_inference: float
    current_j_per_inference: float
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    p_value: float | None = None
    accuracy_baseline: float | None = None
    accuracy_current: float | None = None
    estimated_ratio: float | None = None

    @property
    def exit_code(self) -> int:
        """0 when the gate passes, 1 on a regression."""
        return 0 if self.passed else 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (``--json``)."""
        return {**asdict(self), "exit_code": self.exit_code}

    def markdown(self, recipe: str) -> str:
        """A summary for a pull-request comment or ``$GITHUB_STEP_SUMMARY``."""
        icon = "PASS" if self.passed else "REGRESSION"
        lines = [
            f"### compresslab energy gate: {icon} ({recipe})",
            "",
            "| | baseline | current | change |",
            "|---|---:|---:|---:|",
            f"| energy / inference ({self.tier}) | {self.baseline_j_per_inference:.4g} J | "
            f"{self.current_j_per_inference:.4g} J | {(self.ratio - 1) * 100:+.2f}% |",
        ]
        if self.estimated_ratio is not None:
            lines.append(
                f"| estimated energy (information only) | | | "
                f"{(self.estimated_ratio - 1) * 100:+.1f}% |"
            )
        if self.accuracy_current is not None and self.accuracy_baseline is not None:
            lines.append(
                f"| accuracy | {self.accuracy_baseline:.4f} | {self.accuracy_current:.4f} | "
                f"{(self.accuracy_current - self.accuracy_baseline) * 100:+.2f} points |"
            )
        if self.p_value is not None:
            lines += ["", f"Welch's t-test, one-sided: p = {self.p_value:.3g}."]
        lines += (
            [""] + [f"- {r}" for r in self.reasons] + [f"- warning: {w}" for w in self.warnings]
        )
        return "\n".join(lines) + "\n"


def _recipe_warning(baseline: Snapshot, current: Snapshot) -> str | None:
    """Why the baseline's recipe is not this one (None when it is the same recipe)."""
    from compresslab.recipe import recipe_changes

    if baseline.recipe_hash == current.recipe_hash:
        return None
    text = (
        f"the baseline was made with another recipe (hash {baseline.recipe_hash}, this one "
        f"{current.recipe_hash})"
    )
    if baseline.recipe_fields is None or current.recipe_fields is None:
        return text + (
            ": the baseline file predates stored recipe fields, so what changed is unknown; "
            "check that the comparison is meant, or recreate the baseline with --update"
        )
    changes = recipe_changes(baseline.recipe_fields, current.recipe_fields)
    if not changes:
        return text + ": no field that decides measured results changed"
    shown = "; ".join(changes[:3]) + (f"; and {len(changes) - 3} more" if len(changes) > 3 else "")
    return text + (
        f": changed {shown}. If the change is meant, recreate the baseline with --update"
    )


def compare(
    baseline: Snapshot, current: Snapshot, recipe: Recipe, *, force: bool = False
) -> Verdict:
    """Decide whether ``current`` regressed against ``baseline`` under the recipe's thresholds."""
    cfg = recipe.check
    warnings: list[str] = []
    recipe_warning = _recipe_warning(baseline, current)
    if recipe_warning:
        warnings.append(recipe_warning)
    machine_ok = same_machine(baseline.machine, current.machine)
    if not machine_ok:
        warnings.append(
            f"baseline from {baseline.machine.get('host')} ({baseline.machine.get('cpu_model')}), "
            f"this run on {current.machine.get('host')} ({current.machine.get('cpu_model')})"
        )
    if baseline.batch_size != current.batch_size:
        warnings.append(
            f"batch size changed ({baseline.batch_size} -> {current.batch_size}): figures per "
            "inference are comparable, but weights are amortised differently"
        )
    counters = baseline.provenance in _COUNTER_TIERS and current.provenance in _COUNTER_TIERS
    use_measured = counters and (machine_ok or force)
    if counters and not use_measured:
        warnings.append(
            "measured comparison refused across machines (pass --force to compare anyway); "
            "gated on the modeled tier"
        )
    reasons: list[str] = []
    passed = True
    p_value = None
    if use_measured:
        tier = current.provenance
        base_j, cur_j = baseline.energy_j_per_inference, current.energy_j_per_inference
        ratio = cur_j / base_j
        p_value = welch_p_greater(current.window_j_per_inference, baseline.window_j_per_inference)
        significant = p_value < cfg.alpha
        if ratio > 1 + cfg.max_increase and significant:
            passed = False
            reasons.append(
                f"energy per inference rose {(ratio - 1) * 100:.1f}% ({base_j:.4g} -> "
                f"{cur_j:.4g} J, {tier}), beyond the {cfg.max_increase:.0%} tolerance and "
                f"significant (p = {p_value:.3g} < {cfg.alpha:g})"
            )
        else:
            why = (
                "within the tolerance"
                if ratio <= 1 + cfg.max_increase
                else f"not significant (p = {p_value:.3g})"
            )
            reasons.append(
                f"energy per inference changed {(ratio - 1) * 100:+.1f}% ({tier}): {why}"
            )
        estimated_ratio = None
    else:
        tier = "modeled"
        base_j, cur_j = baseline.modeled_j_per_inference, current.modeled_j_per_inference
        ratio = cur_j / base_j
        limit = 1 + max(cfg.modeled_max_increase, _MODELED_RTOL)
        if ratio > limit:
            passed = False
            reasons.append(
                f"modeled energy per inference rose {(ratio - 1) * 100:.2f}% ({base_j:.4g} -> "
                f"{cur_j:.4g} J): the model does more work per inference"
            )
        else:
            reasons.append(f"modeled energy per inference changed {(ratio - 1) * 100:+.2f}%")
        estimated_ratio = current.energy_j_per_inference / baseline.energy_j_per_inference
        reasons.append(
            f"{current.provenance} figure for information: "
            f"{(estimated_ratio - 1) * 100:+.1f}% (not gated: no energy counter on both sides)"
        )
    if cfg.max_accuracy_drop is not None:
        drop = baseline.accuracy - current.accuracy
        if drop > cfg.max_accuracy_drop:
            passed = False
            reasons.append(
                f"{current.metric} fell {drop * 100:.2f} points ({baseline.accuracy:.4f} -> "
                f"{current.accuracy:.4f}), more than the allowed {cfg.max_accuracy_drop * 100:g}"
            )
    if not math.isfinite(ratio):
        raise UsageError("the comparison produced a non-finite ratio: recreate the baseline")
    return Verdict(
        passed=passed,
        tier=tier,
        ratio=ratio,
        baseline_j_per_inference=base_j,
        current_j_per_inference=cur_j,
        reasons=reasons,
        warnings=warnings,
        p_value=p_value,
        accuracy_baseline=baseline.accuracy,
        accuracy_current=current.accuracy,
        estimated_ratio=estimated_ratio,
    )


def run_check(
    recipe: Recipe,
    *,
    baseline_path: Path,
    update: bool = False,
    force: bool = False,
    trial: int | None = None,
    storage: str | None = None,
) -> tuple[Snapshot, Verdict | None]:
    """Measure the recipe's model and compare with (or, with ``update``, write) the baseline."""
    from compresslab.study import measure_trial

    baseline = None if update else read_baseline(baseline_path)  # fail fast, before measuring
    current = Snapshot.from_measurement(recipe, measure_trial(recipe, trial=trial, storage=storage))
    if update:
        write_baseline(baseline_path, current)
        return current, None
    assert baseline is not None
    return current, compare(baseline, current, recipe, force=force)
