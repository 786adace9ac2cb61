"""A real search on a tiny causal LM: per-token energy, the perplexity tolerance, the report."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from llm_support import TINY_OPTIONS, write_fake_wordnet, write_tiny_model
from tests_support import FAST_ENERGY, with_evaluation

from compresslab.api import load_recipe, search
from compresslab.errors import RecipeError
from compresslab.recipe import recipe_hash
from compresslab.records import Answer, SearchResult
from compresslab.report.blocks import to_html, to_markdown
from compresslab.report.document import build_document


def _recipe(tmp: Path, **search: Any) -> dict[str, Any]:
    wordnet = write_fake_wordnet(tmp / "wordnet")
    folder = write_tiny_model(tmp / "model", wordnet)
    return {
        "name": "tiny-llm",
        "task": {
            "name": "causal_lm",
            "options": {**TINY_OPTIONS, "path": str(folder), "wordnet_path": str(wordnet)},
        },
        "compression": [
            {"method": "prune_llm", "params": {"drop_blocks": 1}},
            {"method": "bf16"},
        ],
        "runtime": {"kv_cache": False},
        "energy": {**FAST_ENERGY, "batch_size": 2},
        "search": {
            "trials": 4,
            "sampler": "grid",
            "seed": 0,
            "screen_examples": 0,
            "confirm_pairs": 2,
            **search,
        },
        "output": str(tmp / "reports"),
    }


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, SearchResult, Path]:
    tmp = tmp_path_factory.mktemp("llm-search")
    recipe = load_recipe(_recipe(tmp, tolerance={"absolute": 1.0, "perplexity": 0.02}))
    return recipe, search(recipe), tmp


@pytest.mark.slow
def test_every_measured_variant_is_within_the_perplexity_tolerance(searched) -> None:  # type: ignore[no-untyped-def]
    _, result, _ = searched
    assert len([t for t in result.trials if t.evaluated]) == 4
    assert "perplexity at most +2%" in result.tolerance
    for t in result.completed:
        assert t.answers and t.phases["prefill"].provenance == "estimated"
        ppl = t.evaluation.perplexity_vs_baseline if t.evaluation is not None else None
        if t.is_baseline:
            continue
        # Paired per text with the baseline: a measured variant is never decided above +2%,
        # and only one decided within it is feasible.
        assert ppl is not None and ppl.decision != "below", t.variant
        assert ppl.texts == TINY_OPTIONS["perplexity_texts"] and ppl.tolerance == 0.02
        if t.feasible:
            assert ppl.decision == "within" and ppl.high <= 1.02, t.variant
    # Dropping one of four blocks moves the tiny model's perplexity by about 3%: decided above
    # +2% (screened, energy not measured) or undecided (measured, never feasible).
    pruned = [t for t in result.trials if "prune_llm" in t.variant and t.evaluated]
    assert pruned and not any(t.feasible for t in pruned)
    for t in result.screened:
        if "perplexity" in (t.screened or ""):
            assert "energy not measured" in (t.screened or "") and t.energy is None
    labels = {t.variant for t in result.completed}
    assert "bf16 @ kv_cache=False" in labels  # the runtime knob reaches the workload


@pytest.mark.slow
def test_energy_is_per_generated_token(searched) -> None:  # type: ignore[no-untyped-def]
    _, result, _ = searched
    base = result.baseline
    assert base is not None and base.energy is not None
    # 2 requests x 4 new tokens per call; the prefill phase counts requests.
    assert base.energy is not None
    assert base.energy.batch_size == 2 * TINY_OPTIONS["new_tokens"]
    assert base.phases["prefill"].batch_size == 2
    assert result.info.unit == "generated token"
    assert base.quality.perplexity_ratio == pytest.approx(1.0)


@pytest.mark.slow
def test_report_gives_per_token_per_request_prefill_decode_and_answers(searched) -> None:  # type: ignore[no-untyped-def]
    recipe, result, _ = searched
    report = (recipe.output_dir() / "report.md").read_text()
    assert "## Energy per generated token and per request" in report
    assert "prefill J / request" in report and "decode J / token" in report
    assert "## Sample answers" in report and TINY_OPTIONS["prompts"][0] in report
    assert "perplexity at most +2%" in report
    df = pd.read_csv(recipe.output_dir() / "trials.csv")
    done = df[df["state"] == "COMPLETE"]
    for column in ("perplexity", "perplexity_ratio", "j_per_request", "prefill_j_per_request"):
        assert done[column].notna().all(), column
    row = done[done["baseline"]].iloc[0]
    assert row["j_per_request"] == pytest.approx(row["energy_j_per_inference"] * 4)
    assert row["new_tokens"] == 4


@pytest.mark.slow
def test_answers_are_escaped_in_html_and_markdown(searched) -> None:  # type: ignore[no-untyped-def]
    _, result, tmp = searched
    evil = "<script>alert(1)</script> | & more"
    base = result.baseline
    assert base is not None
    fake = with_evaluation(base, answers=(Answer(prompt="<b>hi</b>", answer=evil),))
    trials = [fake if t.number == base.number else t for t in result.trials]
    doc = build_document(SearchResult(**{**result.__dict__, "trials": trials}))
    page = to_html(doc, base_dir=tmp)
    assert "<script>alert" not in page and html.escape(evil) in page
    assert "&lt;b&gt;hi&lt;/b&gt;" in page
    text = to_markdown(doc)
    # Given text in markdown: shown as written, never as a tag; a pipe does not split the row.
    assert "<script>" not in text and "<b>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; \\| &amp; more" in text
    assert "&lt;b&gt;hi&lt;/b&gt;" in text


def test_kv_cache_and_perplexity_are_checked_in_recipes(tmp_path: Path) -> None:
    recipe = _recipe(tmp_path)
    recipe["runtime"] = {"kv_cache": {"choices": [1, 2]}}
    with pytest.raises(RecipeError, match="kv_cache"):
        load_recipe(recipe)
    recipe["runtime"] = {}
    recipe["search"]["tolerance"] = {"absolute": 0.01, "perplexity": -1}
    with pytest.raises(RecipeError, match="perplexity"):
        load_recipe(recipe)
    # Recipes that use neither hash as before the fields existed.
    plain = load_recipe("recipes/digits.yaml").model_dump(mode="json")
    assert "kv_cache" not in plain["runtime"] and "perplexity" not in plain["search"]["tolerance"]
    assert recipe_hash(load_recipe("recipes/digits.yaml"))


@pytest.mark.slow
def test_a_classifier_refuses_llm_only_settings(tmp_path: Path) -> None:
    from tests_support import small

    from compresslab.errors import CompressLabError

    recipe = load_recipe(
        small(
            tmp_path,
            search={"trials": 1, "tolerance": {"absolute": 0.01, "perplexity": 0.05}},
        )
    )
    with pytest.raises(CompressLabError, match="needs a task with a perplexity"):
        search(recipe)


@pytest.mark.slow
def test_the_notebook_api_scores_a_causal_model_by_its_choices(searched) -> None:  # type: ignore[no-untyped-def]
    from compresslab import lab

    recipe, result, _ = searched
    study = lab.Study(recipe, result)
    base = result.baseline
    assert base is not None and base.accuracy is not None
    assert study.evaluate(study.task.model) == pytest.approx(base.accuracy)


def test_the_gate_refuses_a_generative_task_and_says_what_to_use(tmp_path: Path) -> None:
    """`check` captures one forward pass: a generation per token is not that (exit 2)."""
    from compresslab.check import BaselineRequest, GateInputError, update_baseline

    recipe = load_recipe(_recipe(tmp_path))
    with pytest.raises(GateInputError, match="per generated token") as caught:
        update_baseline(BaselineRequest(recipe=recipe, baseline=tmp_path / "baseline.json"))
    assert caught.value.exit_code == 2
    assert "compresslab measure" in str(caught.value)
    assert not (tmp_path / "baseline.json").exists()
