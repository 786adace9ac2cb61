"""Which Optuna sampler a recipe gets (and why), and building it (seeded).

``auto`` decides by evidence. When the whole space fits in the budget it is the exhaustive
grid: every variant once. Otherwise it is the sampler that the replay benchmark
(``benchmarks/search_efficiency.py``, figure 3) found best at the nearest budget, as a share of
the space: every sampler proposes variants of a replayed grid whose every variant was built
and measured once, and is scored by the median share of the full grid's hypervolume it
reaches (10 seeds), on the deterministic modeled table and on the estimated one (this kind of
machine, one noisy measurement per variant). :data:`EVIDENCE` holds those medians; ``auto``
averages them over the replays nearest the recipe's budget share. Rerun the benchmark and
update them when the space, the samplers or Optuna change.

On the evidence so far (averaged over the digits and Fashion-MNIST grids and both tables)
TPE with Optuna's defaults is best at 14% and 51% of the grid, and ``tpe_joint`` (TPE that
models the parameters jointly, with a good set of a quarter of the trials) at 29%: there it
found Fashion-MNIST's front, whose hypervolume hangs on one variant, in 98% of the modeled
grid against TPE's 86%. NSGA-II spends its first generation (a third of the budget) on random
draws and has about two guided generations left at 30 trials. On the estimated tables (one
noisy measurement per variant) no sampler reaches 95% at 29 of 99: which importance wins at a
ratio is noise there, and no sampler can learn noise. Samplers are compared only on replays
that tried them all. No space with more than 99 variants, nor a budget above 50, has been
replayed: there the nearest evidence decides, and the stated reason says how far it is.
MiniLM's space is not replayed: building and measuring its 111 variants takes hours on the
2-core development VM.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import socket
import warnings
from dataclasses import dataclass
from typing import Any

from compresslab.errors import RecipeError
from compresslab.recipe import Recipe
from compresslab.study._optuna import load_optuna
from compresslab.study.space import SearchSpace, categorical_choices

log = logging.getLogger(__name__)

#: Samplers that ``auto`` may pick from the evidence.
AUTO_CANDIDATES = ("tpe_joint", "tpe", "nsga2", "random")
#: ``tpe_joint``'s good set: this share of the trials (Optuna's default is 10%, capped at 25).
TPE_JOINT_GOOD_SHARE = 0.25


def tpe_joint_gamma(n: int) -> int:
    """How many of ``n`` trials ``tpe_joint`` models as good: a quarter, rounded up."""
    return math.ceil(TPE_JOINT_GOOD_SHARE * n)


@dataclass(frozen=True)
class Evidence:
    """One replay: median share of a grid's hypervolume per sampler at one budget.

    ``table`` says which energy figures the replay scored: ``modeled`` (deterministic), or
    ``estimated`` on a named CPU (one noisy measurement per variant, but this kind of machine).
    """

    space: str
    grid: int
    budget: int
    table: str
    medians: dict[str, float]

    @property
    def fraction(self) -> float:
        """The budget as a share of the grid."""
        return self.budget / self.grid


#: benchmarks/search_efficiency.py (figure 3), every sampler wrapped in DistinctProposals, 10
#: seeds: the digits and Fashion-MNIST grids of 2026-11-30 18:31 UTC (a Xeon with AMX and
#: native bf16, one measured thread), and the digits grid of 2026-11-22 (a Xeon without native
#: bf16), which predates tpe_joint and so is not compared while tpe_joint is a candidate.
EVIDENCE: tuple[Evidence, ...] = (
    Evidence(
        "digits",
        99,
        14,
        "modeled",
        {"nsga2": 0.866, "tpe": 0.925, "tpe_joint": 0.906, "random": 0.866},
    ),
    Evidence(
        "digits",
        99,
        29,
        "modeled",
        {"nsga2": 0.937, "tpe": 0.974, "tpe_joint": 0.974, "random": 0.959},
    ),
    Evidence(
        "digits",
        99,
        50,
        "modeled",
        {"nsga2": 0.975, "tpe": 0.983, "tpe_joint": 0.98, "random": 0.965},
    ),
    Evidence(
        "digits",
        99,
        14,
        "estimated, AMX",
        {"nsga2": 0.812, "tpe": 0.819, "tpe_joint": 0.822, "random": 0.812},
    ),
    Evidence(
        "digits",
        99,
        29,
        "estimated, AMX",
        {"nsga2": 0.897, "tpe": 0.932, "tpe_joint": 0.922, "random": 0.911},
    ),
    Evidence(
        "digits",
        99,
        50,
        "estimated, AMX",
        {"nsga2": 0.954, "tpe": 0.971, "tpe_joint": 0.93, "random": 0.952},
    ),
    Evidence(
        "fashion-mnist",
        99,
        14,
        "modeled",
        {"nsga2": 0.784, "tpe": 0.813, "tpe_joint": 0.806, "random": 0.784},
    ),
    Evidence(
        "fashion-mnist",
        99,
        29,
        "modeled",
        {"nsga2": 0.871, "tpe": 0.861, "tpe_joint": 0.982, "random": 0.893},
    ),
    Evidence(
        "fashion-mnist",
        99,
        50,
        "modeled",
        {"nsga2": 0.981, "tpe": 0.998, "tpe_joint": 0.998, "random": 0.952},
    ),
    Evidence(
        "fashion-mnist",
        99,
        14,
        "estimated, AMX",
        {"nsga2": 0.809, "tpe": 0.834, "tpe_joint": 0.81, "random": 0.809},
    ),
    Evidence(
        "fashion-mnist",
        99,
        29,
        "estimated, AMX",
        {"nsga2": 0.905, "tpe": 0.898, "tpe_joint": 0.888, "random": 0.912},
    ),
    Evidence(
        "fashion-mnist",
        99,
        50,
        "estimated, AMX",
        {"nsga2": 0.972, "tpe": 0.988, "tpe_joint": 0.957, "random": 0.957},
    ),
    Evidence(
        "digits", 99, 14, "estimated, no bf16", {"tpe": 0.867, "nsga2": 0.832, "random": 0.832}
    ),
    Evidence(
        "digits", 99, 29, "estimated, no bf16", {"tpe": 0.955, "nsga2": 0.920, "random": 0.911}
    ),
    Evidence(
        "digits", 99, 50, "estimated, no bf16", {"tpe": 0.970, "nsga2": 0.946, "random": 0.953}
    ),
)


@dataclass(frozen=True)
class SamplerChoice:
    """The Optuna sampler a study runs, and why (the report states both)."""

    name: str
    reason: str


def choose_sampler(
    recipe: Recipe,
    space: SearchSpace | None = None,
    *,
    evidence: tuple[Evidence, ...] = EVIDENCE,
) -> SamplerChoice:
    """The sampler a recipe gets, with the reason (see the module's docstring).

    Args:
        recipe: the recipe (``search.sampler`` and ``search.trials``).
        space: its search space (built from the recipe when not given).
        evidence: the replay results ``auto`` decides by.
    """
    name = recipe.search.sampler
    budget = recipe.search.trials
    if name != "auto":
        return SamplerChoice(name, "named in the recipe (search.sampler)")
    space = space or SearchSpace.from_recipe(recipe.compression, recipe.runtime)
    try:
        size = space.size()  # counted, never listed: a fine step makes billions of variants
    except RecipeError:
        size = None  # a continuous range: no finite grid
    if size is not None and size <= budget:
        return SamplerChoice(
            "grid", f"auto: the whole space ({size} variants) fits in the budget of {budget}"
        )
    fraction = budget / size if size else 0.0
    # The candidates some replay tried, compared on the tables that replayed them all (a
    # sampler missing from a table is not scored zero there, nor compared on fewer tables).
    candidates = [s for s in AUTO_CANDIDATES if any(s in e.medians for e in evidence)]
    nearest = _nearest(
        tuple(e for e in evidence if all(s in e.medians for s in candidates)), fraction
    )
    if not nearest:
        return SamplerChoice("tpe", "auto: no replay evidence recorded; TPE by default")
    scores = {s: sum(e.medians[s] for e in nearest) / len(nearest) for s in candidates}
    best = max(candidates, key=lambda s: scores[s])
    where = (
        f"{budget} of {size} variants, {100 * fraction:.0f}%"
        if size
        else f"{budget} variants of a space with a continuous range"
    )
    replays = "; ".join(f"{e.space} {e.budget} of {e.grid} ({e.table})" for e in nearest)
    ranked = ", ".join(
        f"{s} {100 * scores[s]:.1f}%" for s in sorted(candidates, key=lambda s: -scores[s])
    )
    return SamplerChoice(
        best,
        f"auto: {best} reached the largest median share of the exhaustive grid's hypervolume "
        f"in the replay benchmark, averaged over the replays nearest this budget ({where}): "
        f"{ranked} ({replays})",
    )


def _nearest(evidence: tuple[Evidence, ...], fraction: float) -> list[Evidence]:
    """Per replayed table, the replay whose budget share is nearest ``fraction`` (log scale)."""
    out = []
    for key in sorted({(e.space, e.table) for e in evidence}):
        rows = [e for e in evidence if (e.space, e.table) == key]
        floor = min(e.fraction for e in rows)
        target = math.log(max(fraction, floor / 10))
        out.append(min(rows, key=lambda e: (abs(math.log(e.fraction) - target), e.budget)))
    return out


def sampler_name(recipe: Recipe, space: SearchSpace | None = None) -> str:
    """The Optuna sampler a recipe gets (see :func:`choose_sampler` for the rule and why)."""
    return choose_sampler(recipe, space).name


def nsga2_population(trials: int) -> int:
    """NSGA-II's population for a budget: a third of it, between 8 and 50."""
    # Optuna's default population (50) exceeds most budgets here, which would leave NSGA-II
    # doing random search only; a third of the budget gives it generations.
    return max(8, min(50, trials // 3))


#: Variants TPE and GP draw at random before their model is used (Optuna's defaults).
_STARTUP = {"tpe": 10, "tpe_joint": 10, "gp": 10}


def budget_warnings(recipe: Recipe, space: SearchSpace, sampler: str, target: int) -> list[str]:
    """What makes a budget of ``target`` variants too small for this space and sampler."""
    try:
        size = space.size()
    except RecipeError:
        size = None  # continuous: endless
    if size is not None and size <= target:
        return []  # every variant fits
    how = "raise --trials (or search.trials)"
    if target <= 1:
        return [f"a budget of {target} variant evaluates only the uncompressed baseline: {how}"]
    out = []
    choices = categorical_choices(space)
    if target < 2 * choices:
        out.append(
            f"a budget of {target} variants is small for this space "
            f"({'endless' if size is None else size} variants, {choices} categorical choices "
            f"to try): the sampler cannot try each choice about twice; {how} to at least "
            f"{2 * choices}, or narrow the space"
        )
    if sampler == "nsga2" and target < 2 * (pop := nsga2_population(recipe.search.trials)):
        out.append(
            f"NSGA-II's first generation is {pop} random variants, so a budget of {target} ends "
            f"before it evolves: {how} to at least {2 * pop}, or use search.sampler: random"
        )
    if sampler in _STARTUP and target <= _STARTUP[sampler]:
        out.append(
            f"{sampler} draws its first {_STARTUP[sampler]} variants at random, so a budget of "
            f"{target} never uses its model: {how}, or use search.sampler: random"
        )
    return out


def make_optuna_sampler(
    recipe: Recipe,
    name: str,
    *,
    shared: bool = False,
    seed_offset: int = 0,
    space: SearchSpace | None = None,
) -> Any:
    """The seeded Optuna sampler ``name`` for a recipe.

    Args:
        recipe: the recipe (budget and seed).
        name: ``gp``, ``nsga2``, ``tpe``, ``random`` or ``grid`` (whose points are enqueued).
        shared: the study is shared by several workers (each mixes its identity into the seed).
        seed_offset: continues the seed of a resumed study (trials already run).
        space: the search space; when it is a finite grid, the sampler is wrapped so that it
            proposes variants not yet evaluated (:class:`DistinctProposals`).
    """
    sampler = _make(recipe, name, shared=shared, seed_offset=seed_offset)
    if space is None or name == "grid":
        return sampler
    try:
        grid = space.grid()
    except RecipeError:
        return sampler  # a continuous range: repeats are all but impossible
    if len(grid) > _MAX_DISTINCT_GRID:
        return sampler  # repeats are rare in so large a space, and checking each costs
    return DistinctProposals(sampler, grid, seed=recipe.search.seed + seed_offset)


#: The largest grid whose proposals :class:`DistinctProposals` checks.
_MAX_DISTINCT_GRID = 20_000


def _make(recipe: Recipe, name: str, *, shared: bool, seed_offset: int) -> Any:
    optuna = load_optuna()
    # numpy's generators take 32-bit seeds; a resumed study's offset must not overflow them.
    seed = (recipe.search.seed + 1_000_003 * seed_offset) % 2**32
    if shared:
        # Workers sharing a study with one seed would all propose the same variants in the
        # same order (duplicates, reuses); each mixes its identity in. A fleet's order of
        # trials is not reproducible anyway.
        worker = f"{seed}:{socket.gethostname()}:{os.getpid()}".encode()
        seed = int.from_bytes(hashlib.sha256(worker).digest()[:4], "big")
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if name == "nsga2":
        population = nsga2_population(recipe.search.trials)
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=population)
    if name == "tpe":
        # Optuna's defaults: independent TPE, 10 random start-up trials, a good set of 10%.
        return optuna.samplers.TPESampler(seed=seed)
    if name == "tpe_joint":
        # TPE that models the parameters jointly, per branch of the conditional space
        # (multivariate, group), with a good set of a quarter of the trials: feasibility
        # depends on ratio and recovery together, and a front of 5 to 8 variants needs more
        # than the 2 or 3 "good" trials Optuna's 10% leaves at a budget of 30. Replayed over
        # 40 seeds at 29 of 99 (benchmarks/sampler_configs.py, NOTES.md), it reached 95% of
        # the grid in more seeds than Optuna's defaults on all four tables.
        # multivariate and group are experimental in Optuna (load_optuna silences that);
        # ``gamma`` is deprecated since Optuna 4.9 and to be removed in 6.0: then tpe_joint
        # falls back to Optuna's good set, with a warning that the evidence was not that.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning, message=".*gamma.*")
            try:
                return optuna.samplers.TPESampler(
                    seed=seed, multivariate=True, group=True, gamma=tpe_joint_gamma
                )
            except TypeError:
                log.warning(
                    "this Optuna (%s) has no TPESampler(gamma=...): tpe_joint runs with "
                    "Optuna's own good set, not the quarter its replay evidence used",
                    optuna.__version__,
                )
                return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True)
    # random, and grid (whose points are enqueued; the random sampler is never consulted
    # until the grid is exhausted)
    return optuna.samplers.RandomSampler(seed=seed)


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
