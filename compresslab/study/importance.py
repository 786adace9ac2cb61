"""Which parameters mattered: Optuna's importance evaluator for each objective of a study."""

from __future__ import annotations

import logging
import warnings
from typing import Any

from compresslab.records import Importance
from compresslab.study import attrs
from compresslab.study._optuna import load_optuna

log = logging.getLogger(__name__)

#: Fewer complete trials than this say nothing about importance.
MIN_TRIALS = 6


def param_importances(study: Any) -> Importance | None:
    """Importance of each parameter for accuracy and for energy (fANOVA, seeded).

    Returns:
        The share of each parameter per objective (summing to 1 per objective), or None with
        too few complete trials or a single varying parameter.
    """
    optuna = load_optuna()
    complete = [
        t
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if t.user_attrs.get(attrs.REUSED_FROM) is None
    ]
    if len(complete) < MIN_TRIALS:
        return None
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    out: dict[str, dict[str, float]] = {}
    for name, index in (("accuracy", 0), ("energy", 1)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                scores = optuna.importance.get_param_importances(
                    study, evaluator=evaluator, target=lambda t, i=index: t.values[i]
                )
        except (ValueError, RuntimeError) as e:  # e.g. one distribution only, or no variance
            log.info("parameter importance for %s not computed: %s", name, e)
            return None
        out[name] = {str(k): float(v) for k, v in scores.items()}
    return Importance(accuracy=out["accuracy"], energy=out["energy"])
