"""The progress display counts distinct variants against the budget, with the time left."""

from __future__ import annotations

from record_builders import energy

from compresslab.progress import Eta, trial_line
from compresslab.records import Evaluation, TrialRecord


def record(*, accuracy: float | None = 0.981, **kw: object) -> TrialRecord:
    evaluation = None
    if accuracy is not None:
        evaluation = Evaluation(
            metric=accuracy, metric_ci95=(accuracy, accuracy), energy=energy(1e-3), vs_baseline=None
        )
    base: dict[str, object] = {
        "number": 85,
        "state": "COMPLETE",
        "variant": "prune_channels(ratio=0.3)",
        "is_baseline": False,
        "params": {},
        "evaluation": evaluation,
    }
    return TrialRecord(**(base | kw))  # type: ignore[arg-type]


def test_a_trial_line_never_shows_optunas_trial_number_as_progress() -> None:
    assert trial_line(record()) == "prune_channels(ratio=0.3): acc 0.981"
    assert "#" not in trial_line(record(reused_from=3))
    assert trial_line(record(reused_from=3)).endswith("a repeat of trial 3, not counted")
    failed = trial_line(record(state="FAIL", accuracy=None, error="VariantError: boom"))
    assert failed == "prune_channels(ratio=0.3): fail (VariantError: boom)"
    assert "85" not in trial_line(record()) + failed


def test_the_eta_comes_from_this_sessions_pace() -> None:
    now = [100.0]
    eta = Eta(clock=lambda: now[0])
    # Resumed at 10 of 30 variants: the first callback (one variant later) sets the pace.
    now[0] = 160.0
    assert eta(11, 30) == "ETA 0:19:00"  # 60 s a variant, 19 left
    now[0] = 220.0
    assert eta(12, 30) == "ETA 0:18:00"
    now[0] = 400.0
    assert eta(12, 30) == "ETA 0:45:00"  # a slow, uncounted trial slows the pace: 150 s each
    assert eta(30, 30) == "done"


def test_no_eta_before_a_variant_of_this_session() -> None:
    eta = Eta(clock=lambda: 5.0)
    assert eta(0, 30) == "ETA -"
