"""Which sampler `auto` picks: the grid when the space fits, else what the replay evidence says."""

from __future__ import annotations

from pathlib import Path

from tests_support import small

from compresslab.api import load_recipe
from compresslab.study import SearchSpace
from compresslab.study.samplers import EVIDENCE, Evidence, choose_sampler, sampler_name

#: The shipped digits space: 15 ratios x 3 importances x 2 x 2 + none = 61, x 3 quantizers.
DIGITS = [
    {
        "method": "prune_channels",
        "params": {
            "ratio": {"low": 0.1, "high": 0.8, "step": 0.05},
            "importance": {"choices": ["l1", "l2", "fpgm"]},
            "recovery_epochs": {"choices": [0, 5]},
            "round_to": {"choices": [1, 8]},
        },
    },
    {"method": "dynamic_int8"},
    {"method": "bf16"},
]


def _recipe(tmp_path: Path, *, trials: int, sampler: str = "auto", compression=DIGITS):  # type: ignore[no-untyped-def]
    return load_recipe(
        small(tmp_path, compression=compression, search={"trials": trials, "sampler": sampler})
    )


def test_auto_is_the_grid_when_the_whole_space_fits(tmp_path: Path) -> None:
    recipe = _recipe(
        tmp_path,
        trials=6,
        compression=[
            {"method": "prune_channels", "params": {"ratio": {"choices": [0.2, 0.4]}}},
            {"method": "dynamic_int8"},
        ],
    )
    choice = choose_sampler(recipe)
    assert choice.name == "grid" and "6 variants" in choice.reason and "fits" in choice.reason


def test_auto_follows_the_replay_evidence_at_the_default_budget(tmp_path: Path) -> None:
    recipe = _recipe(tmp_path, trials=30)
    space = SearchSpace.from_recipe(recipe.compression, recipe.runtime)
    assert len(space.grid()) == 543
    choice = choose_sampler(recipe, space)
    # The evidence so far: TPE leads at the smallest replayed budget (NSGA-II spends a third
    # of a small budget on a random first generation; tpe_joint leads at 29 of 99).
    assert choice.name == "tpe" == sampler_name(recipe, space)
    # The reason names the evidence: this budget's share, the replays used, their means.
    assert "30 of 543 variants, 6%" in choice.reason
    # the smallest share replayed, 14%, on the tables that replayed every candidate
    nearest = [e for e in EVIDENCE if e.budget == 14 and "tpe_joint" in e.medians]
    mean = sum(e.medians["tpe"] for e in nearest) / len(nearest)
    assert "no bf16" not in choice.reason  # that table predates tpe_joint
    assert f"tpe {100 * mean:.1f}%" in choice.reason
    assert "digits 14 of 99 (modeled)" in choice.reason
    assert "fashion-mnist 14 of 99 (estimated, AMX)" in choice.reason


def test_auto_picks_whatever_the_evidence_shows_best_at_the_nearest_budget(tmp_path: Path) -> None:
    evidence = (
        Evidence("toy", 100, 10, "modeled", {"tpe": 0.95, "nsga2": 0.80, "random": 0.85}),
        Evidence("toy", 100, 60, "modeled", {"tpe": 0.90, "nsga2": 0.99, "random": 0.95}),
        Evidence("toy", 100, 60, "estimated", {"tpe": 0.90, "nsga2": 0.97, "random": 0.97}),
    )
    space = SearchSpace.from_recipe(_recipe(tmp_path, trials=30).compression)
    small_budget = choose_sampler(_recipe(tmp_path, trials=30), space, evidence=evidence)
    large_budget = choose_sampler(_recipe(tmp_path, trials=400), space, evidence=evidence)
    assert small_budget.name == "tpe"  # 6% of the space: nearest to the 10% replay
    assert large_budget.name == "nsga2"  # 74%: nearest to the 60% replay
    # averaged over the tables' nearest replays: nsga2 98.0%, random 96.0%, tpe 90.0%
    assert "nsga2 98.0%, random 96.0%, tpe 90.0%" in large_budget.reason
    assert "toy 60 of 100 (estimated); toy 60 of 100 (modeled)" in large_budget.reason


def test_a_continuous_space_uses_the_smallest_budget_share_replayed(tmp_path: Path) -> None:
    recipe = _recipe(
        tmp_path,
        trials=30,
        compression=[{"method": "prune_channels", "params": {"ratio": {"low": 0.1, "high": 0.6}}}],
    )
    evidence = (
        Evidence("toy", 100, 10, "modeled", {"tpe": 0.80, "nsga2": 0.70, "random": 0.90}),
        Evidence("toy", 100, 60, "modeled", {"tpe": 0.99, "nsga2": 0.70, "random": 0.90}),
    )
    choice = choose_sampler(recipe, evidence=evidence)
    assert choice.name == "random" and "continuous range" in choice.reason


def test_a_named_sampler_is_kept_and_said_so(tmp_path: Path) -> None:
    choice = choose_sampler(_recipe(tmp_path, trials=30, sampler="nsga2"))
    assert choice.name == "nsga2" and "named in the recipe" in choice.reason


def test_proposals_are_distinct_until_the_grid_is_exhausted(tmp_path: Path) -> None:
    import optuna

    from compresslab.study.samplers import DistinctProposals, make_optuna_sampler

    recipe = _recipe(
        tmp_path,
        trials=4,
        compression=[
            {"method": "prune_channels", "params": {"ratio": {"choices": [0.2, 0.4, 0.6]}}},
            {"method": "dynamic_int8"},
        ],
    )
    space = SearchSpace.from_recipe(recipe.compression)
    grid = space.grid()
    assert len(grid) == 8
    for name in ("tpe", "tpe_joint", "nsga2", "random"):
        sampler = make_optuna_sampler(recipe, name, space=space)
        assert isinstance(sampler, DistinctProposals)
        study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
        labels = []
        for i in range(len(grid)):
            trial = study.ask()
            labels.append(space.suggest(trial).label())
            study.tell(trial, [0.9 + 0.001 * i, 1.0 - 0.01 * i])
        assert len(set(labels)) == len(grid), (name, labels)
    # without the space (nothing to check proposals against): Optuna's own sampler
    plain = make_optuna_sampler(recipe, "tpe")
    assert isinstance(plain, optuna.samplers.TPESampler)


def test_tpe_joint_models_parameters_together_with_a_quarter_as_good(tmp_path: Path) -> None:
    import optuna

    from compresslab.study.samplers import make_optuna_sampler, tpe_joint_gamma

    sampler = make_optuna_sampler(_recipe(tmp_path, trials=15, sampler="tpe_joint"), "tpe_joint")
    assert isinstance(sampler, optuna.samplers.TPESampler)
    assert sampler._multivariate and sampler._group
    assert sampler._gamma is tpe_joint_gamma
    assert [tpe_joint_gamma(n) for n in (1, 4, 29, 100)] == [1, 1, 8, 25]


def test_auto_compares_samplers_only_on_tables_that_replayed_them_all(tmp_path: Path) -> None:
    evidence = (
        Evidence(
            "toy", 100, 10, "modeled", {"tpe_joint": 0.97, "tpe": 0.95, "nsga2": 0.8, "random": 0.8}
        ),
        Evidence("toy", 100, 10, "older", {"tpe": 0.99, "nsga2": 0.70, "random": 0.70}),
    )
    space = SearchSpace.from_recipe(_recipe(tmp_path, trials=10).compression)
    choice = choose_sampler(_recipe(tmp_path, trials=10), space, evidence=evidence)
    # The older table never tried tpe_joint: neither a zero for it nor a win for tpe there.
    assert choice.name == "tpe_joint"
    assert "tpe_joint 97.0%, tpe 95.0%" in choice.reason and "(older)" not in choice.reason
