from __future__ import annotations

from pathlib import Path

import pytest

from compresslab.api import load_recipe
from compresslab.errors import TaskError
from compresslab.recipe import TaskSpec
from compresslab.tasks import PROVIDERS, load_task, resolve_provider


def test_builtin_providers_are_registered() -> None:
    assert {"digits", "minilm-wordnet", "fashion-mnist", "hf_local"} <= set(PROVIDERS)
    with pytest.raises(TaskError, match="minilm-wordnet, fashion-mnist, hf_local"):
        load_task(TaskSpec(name="minilm"))


@pytest.mark.parametrize("name", ["minilm-wordnet.yaml", "fashion-mnist.yaml"])
def test_shipped_recipes_are_valid(repo: Path, name: str) -> None:
    recipe = load_recipe(repo / "recipes" / name)
    assert recipe.task.name == name.removesuffix(".yaml")
    assert resolve_provider(recipe.task) is PROVIDERS[recipe.task.name]
    # Options are checked by the provider itself: every key the recipe sets must be known.
    from compresslab.tasks import fashion_mnist, minilm

    module = minilm if recipe.task.name == "minilm-wordnet" else fashion_mnist
    assert set(recipe.task.options) <= set(module.DEFAULT_OPTIONS)


def test_missing_data_skips_locally_but_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    from task_data import _missing

    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install wordnet-base"):
        _missing("WordNet", "apt-get install wordnet-base")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="apt-get install wordnet-base"):
        _missing("WordNet", "apt-get install wordnet-base")
