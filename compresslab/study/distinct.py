"""Proposals of variants not evaluated yet: a wrapper around any Optuna sampler."""

from __future__ import annotations

import math
from typing import Any

from compresslab.study._optuna import load_optuna


def _key(value: Any) -> Any:
    return round(value, 10) if isinstance(value, float) else value


def _frozen(params: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((k, _key(v)) for k, v in params.items()))


def _values(distribution: Any) -> list[Any]:
    """Every value a finite distribution can take (None: not finite)."""
    if hasattr(distribution, "choices"):
        return list(distribution.choices)
    step = getattr(distribution, "step", None)
    if step is None:
        return []
    n = int(math.floor((distribution.high - distribution.low) / step + 1e-9)) + 1
    values = [distribution.low + i * step for i in range(n)]
    return [int(v) for v in values] if isinstance(distribution.low, int) else values


class DistinctProposals:
    """Wraps an Optuna sampler so that it proposes variants the study has not evaluated yet.

    Samplers repeat points of small discrete spaces: in the replay benchmark, TPE at 29 of 99
    variants needed a median 94 proposals (of the 97 the search allows) for its distinct
    variants, and some seeds ran out with 22; each repeat is a trial the search pays for (a
    reused result, storage, the sampler's own time) and, told as a complete trial, pulls the
    sampler back to the same point. The space is a finite grid, so every parameter's choice can
    be checked as it is drawn: a value whose every completion was evaluated already (or is
    being evaluated by another worker) is drawn again from the wrapped sampler, a few times,
    then replaced by a random value that leaves some variant open. Jointly drawn (relative)
    parameters that leave nothing open are dropped, so they are drawn one by one instead.
    """

    _REDRAWS = 4

    def __init__(self, sampler: Any, grid: list[dict[str, Any]], *, seed: int) -> None:
        import random

        self.sampler = sampler
        self.grid = [{k: _key(v) for k, v in point.items()} for point in grid]
        self._keys = [_frozen(point) for point in self.grid]
        self._rng = random.Random(seed)
        # what the study had evaluated when this trial's first parameter was drawn
        self._cache: tuple[int, set[tuple[tuple[str, Any], ...]]] | None = None

    def __str__(self) -> str:
        return f"{type(self.sampler).__name__} (distinct proposals)"

    def _seen(self, study: Any, trial: Any) -> set[tuple[tuple[str, Any], ...]]:
        """Variants of other trials (read once per trial: reading a study costs)."""
        if self._cache is None or self._cache[0] != trial.number:
            self._cache = (trial.number, self._read_seen(study, trial))
        return self._cache[1]

    def _read_seen(self, study: Any, trial: Any) -> set[tuple[tuple[str, Any], ...]]:
        optuna = load_optuna()
        states = (
            optuna.trial.TrialState.COMPLETE,
            optuna.trial.TrialState.PRUNED,
            optuna.trial.TrialState.RUNNING,
            optuna.trial.TrialState.WAITING,
        )
        return {
            _frozen(t.params)
            for t in study.get_trials(deepcopy=False, states=states)
            if t.number != trial.number
        }

    def _open(self, partial: dict[str, Any], seen: set[tuple[tuple[str, Any], ...]]) -> bool:
        """Whether some variant that agrees with ``partial`` has not been evaluated."""
        want = {k: _key(v) for k, v in partial.items()}
        return any(
            all(point.get(k, _MISSING) == v for k, v in want.items()) and key not in seen
            for point, key in zip(self.grid, self._keys, strict=True)
        )

    def infer_relative_search_space(self, study: Any, trial: Any) -> Any:
        """The wrapped sampler's."""
        return self.sampler.infer_relative_search_space(study, trial)

    def sample_relative(self, study: Any, trial: Any, search_space: Any) -> Any:
        """The wrapped sampler's joint draw, unless it leaves no variant open."""
        seen = self._seen(study, trial)
        for _ in range(self._REDRAWS):
            params = self.sampler.sample_relative(study, trial, search_space)
            if not params or self._open({**trial.params, **params}, seen):
                return params
        return {}

    def sample_independent(self, study: Any, trial: Any, name: str, distribution: Any) -> Any:
        """The wrapped sampler's draw, unless every completion of it was evaluated."""
        seen = self._seen(study, trial)
        prefix = dict(trial.params)
        value = self.sampler.sample_independent(study, trial, name, distribution)
        for _ in range(self._REDRAWS):
            if self._open({**prefix, name: value}, seen):
                return value
            value = self.sampler.sample_independent(study, trial, name, distribution)
        open_values = [v for v in _values(distribution) if self._open({**prefix, name: v}, seen)]
        return self._rng.choice(open_values) if open_values else value

    def before_trial(self, study: Any, trial: Any) -> None:
        """The wrapped sampler's."""
        self.sampler.before_trial(study, trial)

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        """The wrapped sampler's."""
        self.sampler.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        """The wrapped sampler's, and this one's."""
        self.sampler.reseed_rng()
        self._rng.seed()


_MISSING = object()
