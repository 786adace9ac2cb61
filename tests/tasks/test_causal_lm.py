"""The causal-LM task on a tiny random Llama (made here) and, where installed, on SmolLM2."""

from __future__ import annotations

import copy
import importlib.util
import math
import os
from pathlib import Path

import pytest
import torch
from llm_support import PROMPTS, TINY_OPTIONS, tiny_task, tiny_tokenizer, write_fake_wordnet

from compresslab.errors import TaskError
from compresslab.tasks import PROVIDERS, check_task
from compresslab.tasks.causal_lm import CausalLMTask, causal_lm_task, log_mean_interval
from compresslab.tasks.generation import PAD, CausalLM, find_causal_lm, pad_left, trim_left
from compresslab.tasks.lm_data import multiple_choice
from compresslab.tasks.lm_scoring import text_nll
from compresslab.tasks.smollm2 import INSTALL, smollm2_gguf
from compresslab.tasks.wordnet import read_noun_glosses


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> CausalLMTask:
    return tiny_task(tmp_path_factory.mktemp("tiny"))


def _hf(task: CausalLMTask):  # type: ignore[no-untyped-def]
    return find_causal_lm(task.model).lm


def test_the_task_holds_questions_text_and_prompts(tiny: CausalLMTask) -> None:
    assert tiny.unit == "generated token"
    assert tiny.num_classes == 4
    assert tiny.eval_inputs.shape[0] == tiny.eval_labels.shape[0] == 24
    assert tiny.choices.shape == (24, 4)
    labels = set(tiny.eval_labels.tolist())
    assert labels <= {0, 1, 2, 3} and len(labels) > 1
    for row in tiny.choices.tolist():
        assert len(set(row)) == 4  # four different words
    # Left padding only: once a row has a token, it has no padding after it.
    for ids in (tiny.eval_inputs, tiny.text, tiny.prompts, tiny.train_inputs):
        assert ids is not None
        real = ids != PAD
        assert bool((real.long().diff(dim=1) >= 0).all())
    assert tiny.prompts.shape[0] == len(PROMPTS)
    assert tiny.train_inputs is not None and tiny.train_inputs.shape[0] == 8
    assert tiny.text.shape[0] == 8
    # The three data sets are disjoint: no calibration or perplexity text is a question's.
    texts = {tuple(r) for r in tiny.text.tolist()}
    assert not texts & {tuple(r) for r in tiny.train_inputs.tolist()}
    assert "24 WordNet questions" in tiny.description


def test_padding_changes_nothing(tiny: CausalLMTask) -> None:
    lm = find_causal_lm(tiny.model)
    x = trim_left(tiny.eval_inputs[:4])
    padded = torch.cat([torch.full((4, 5), PAD), x], dim=1)
    with torch.inference_mode():
        a, b = lm.last_logits(x), lm.last_logits(padded)
        full = lm(padded)[:, -1]
    assert torch.allclose(a, b, atol=1e-5)
    assert torch.allclose(full, a, atol=1e-5)


def test_predictions_pick_the_most_likely_choice(tiny: CausalLMTask) -> None:
    hf = _hf(tiny)
    preds = tiny.predictions(tiny.model)
    for i in (0, 7, 23):
        ids = torch.tensor([[t for t in tiny.eval_inputs[i].tolist() if t != PAD]])
        with torch.inference_mode():
            logp = hf(input_ids=ids).logits[0, -1].log_softmax(-1)
        assert int(preds[i]) == int(logp[tiny.choices[i]].argmax())
    subset = torch.tensor([5, 2, 19])
    assert torch.equal(tiny.predictions(tiny.model, subset), preds[subset])


def test_log_mean_interval_is_a_ratio_estimator() -> None:
    tokens = torch.tensor([10, 20, 30])
    same = tokens * 2.0  # every token costs 2 nats: no spread at all
    value, low, high = log_mean_interval(same, tokens)
    assert value == pytest.approx(math.exp(2.0)) and low == pytest.approx(value)
    assert high == pytest.approx(value)
    spread = torch.tensor([15.0, 40.0, 65.0])
    value, low, high = log_mean_interval(spread, tokens)
    assert value == pytest.approx(math.exp(120 / 60))
    assert low < value < high


def _asked_tokens(choices: torch.Tensor, labels: torch.Tensor) -> set[int]:
    return set(choices.gather(1, labels.unsqueeze(1)).flatten().tolist())


def test_the_confirmation_split_asks_other_words(tiny: CausalLMTask) -> None:
    assert tiny.confirm_inputs is not None and tiny.confirm_labels is not None
    assert tiny.confirm_choices is not None and tiny.confirm_choices.shape == (16, 4)
    pool = _asked_tokens(tiny.choices, tiny.eval_labels)
    confirm = _asked_tokens(tiny.confirm_choices, tiny.confirm_labels)
    assert len(pool) == 24 and len(confirm) == 16 and not pool & confirm
    # No perplexity or calibration text is the gloss of an asked word ("word: definition.").
    assert tiny.train_inputs is not None
    for ids in (tiny.text, tiny.train_inputs):
        words = {t for row in ids.tolist() for t in [t for t in row if t != PAD][:2]}
        assert not words & (pool | confirm)
    copy_ = tiny.confirmation()
    assert isinstance(copy_, CausalLMTask) and copy_.model is tiny.model
    assert torch.equal(copy_.eval_inputs, tiny.confirm_inputs)
    assert torch.equal(copy_.choices, tiny.confirm_choices)
    assert copy_.confirmation() is None and copy_.info["eval_examples"] == "16"
    preds = copy_.predictions(copy_.model)
    hf = _hf(tiny)
    for i in (0, 15):
        ids = torch.tensor([[t for t in tiny.confirm_inputs[i].tolist() if t != PAD]])
        with torch.inference_mode():
            logp = hf(input_ids=ids).logits[0, -1].log_softmax(-1)
        assert int(preds[i]) == int(logp[tiny.confirm_choices[i]].argmax())
    assert "a confirmation split of 16 questions" in tiny.description


def test_questions_are_not_capped_by_the_glosses_they_use(tmp_path: Path) -> None:
    path = write_fake_wordnet(tmp_path / "wordnet", n=1500)
    glosses = read_noun_glosses(path=path)
    tokenizer = tiny_tokenizer(
        sorted({g.word for g in glosses}) + ["The", "word", "for", "is", '"']
    )
    split = multiple_choice(glosses, tokenizer, questions=1200, confirm_questions=250, seed=0,
                            max_definition_tokens=12)  # fmt: skip
    pool, confirm = split.pool, split.confirm
    # 1200 + 250 questions from 1500 glosses: the old 4-glosses-a-question cap was 375.
    assert len(pool.labels) == 1200 and len(confirm.labels) == 250
    assert len(set(pool.answers)) == 1200 and not set(pool.answers) & set(confirm.answers)
    rows = zip(pool.words, pool.labels.tolist(), pool.choices.tolist(), strict=True)
    for words, label, ids in rows:
        assert len(set(words)) == 4 and len(set(ids)) == 4
        assert words.count(words[label]) == 1  # the right answer is never a distractor
    # Distractors come from the whole vocabulary, asked words of either split included.
    distractors = pool.all_words - set(pool.answers)
    assert distractors & set(confirm.answers)
    # A seeded random order, not sorted by prompt length: any prefix is a random sample.
    lengths = [len(p) for p in pool.prompts]
    assert lengths != sorted(lengths) and len(set(lengths[:20])) > 1
    assert sorted(pool.labels[:400].tolist()) != pool.labels[:400].tolist()
    # A smaller pool is a prefix of a larger one; the confirmation split stays put.
    small = multiple_choice(glosses, tokenizer, questions=100, confirm_questions=250, seed=0,
                            max_definition_tokens=12)  # fmt: skip
    assert small.pool.words == pool.words[:100] and small.pool.prompts == pool.prompts[:100]
    assert small.confirm.words == confirm.words
    other = multiple_choice(glosses, tokenizer, questions=100, seed=1, max_definition_tokens=12)
    assert other.pool.words != small.pool.words and len(other.confirm.labels) == 0
    with pytest.raises(TaskError, match="lower `questions` or `confirm_questions`"):
        multiple_choice(glosses, tokenizer, questions=1400, confirm_questions=250, seed=0,
                        max_definition_tokens=12)  # fmt: skip


def test_text_nll_is_per_text_in_the_given_order(tiny: CausalLMTask) -> None:
    lm = find_causal_lm(tiny.model)
    nll, tokens = text_nll(lm, tiny.text, batch_size=3)
    for i in (0, 5):
        alone_nll, alone_tokens = text_nll(lm, tiny.text[i : i + 1])
        assert float(nll[i]) == pytest.approx(float(alone_nll[0]), rel=1e-4)
        assert int(tokens[i]) == int(alone_tokens[0]) == int((tiny.text[i] != PAD).sum()) - 1
    reversed_nll, _ = text_nll(lm, tiny.text.flip(0), batch_size=3)
    assert torch.allclose(reversed_nll.flip(0), nll, rtol=1e-4)


def test_quality_compares_with_the_base_model_on_the_same_tokens(tiny: CausalLMTask) -> None:
    base = tiny.quality(copy.deepcopy(tiny.model))
    assert base["perplexity_ratio"] == pytest.approx(1.0)
    # Per-text outcomes, the variant's and the base model's, on the same 8 texts.
    assert len(base["text_nll"]) == len(base["text_tokens"]) == len(base["baseline_text_nll"])
    assert len(base["text_nll"]) == 8 and sum(base["text_tokens"]) == base["perplexity_tokens"]
    assert base["text_nll"] == pytest.approx(base["baseline_text_nll"])
    mean = sum(base["text_nll"]) / sum(base["text_tokens"])
    assert base["perplexity"] == pytest.approx(math.exp(mean))
    lo, hi = base["perplexity_ci95"]
    assert lo < base["perplexity"] < hi
    assert base["perplexity_tokens"] > base["perplexity_texts"] == 8
    noisy = copy.deepcopy(tiny.model)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in noisy.parameters():
            if p.dim() == 2:
                p.add_(torch.randn(p.shape, generator=gen) * p.std() * 0.5)
    worse = tiny.quality(noisy)
    assert worse["perplexity_ratio"] != pytest.approx(1.0)
    r_lo, r_hi = worse["perplexity_ratio_ci95"]
    assert r_lo <= worse["perplexity_ratio"] <= r_hi
    assert worse["baseline_perplexity"] == pytest.approx(base["perplexity"])
    assert worse["baseline_text_nll"] == pytest.approx(base["text_nll"])
    assert worse["text_tokens"] == base["text_tokens"]
    assert worse["text_nll"] != pytest.approx(base["text_nll"])


def test_generation_workload_makes_a_fixed_number_of_tokens(tiny: CausalLMTask) -> None:
    batch = tiny.inference_batch(5)  # 3 prompts, cycled
    assert batch.shape[0] == 5
    work = tiny.workload(tiny.model, batch)
    assert work.unit == "generated token"
    assert work.units_per_call == 5 * tiny.new_tokens
    with torch.inference_mode():
        out = work.runner(work.inputs)
        prefill = work.phases["prefill"]
        logits = prefill.runner(prefill.inputs)
        no_cache = tiny.workload(tiny.model, batch, kv_cache=False)
        out_no_cache = no_cache.runner(no_cache.inputs)
    assert out.shape == (5, tiny.new_tokens) and bool((out != PAD).all())
    assert prefill.units_per_call == 5 and prefill.unit == "request"
    assert logits.shape[0] == 5
    # Greedy decoding gives the same tokens with and without the KV cache.
    assert torch.equal(out, out_no_cache)


def test_padded_batch_generates_what_each_prompt_generates_alone(tiny: CausalLMTask) -> None:
    lm = find_causal_lm(tiny.model)
    batch = tiny.inference_batch(3)
    with torch.inference_mode():
        together = lm.generate_ids(batch, new_tokens=5)
        for i in range(3):
            alone = torch.tensor([[t for t in batch[i].tolist() if t != PAD]])
            hf = lm.lm.generate(
                input_ids=alone, max_new_tokens=5, min_new_tokens=5, do_sample=False
            )
            assert together[i].tolist() == hf[0, alone.shape[1] :].tolist()


def test_answers_stop_at_the_end_of_sequence(tiny: CausalLMTask) -> None:
    answers = tiny.answers(tiny.model)
    assert [a["prompt"] for a in answers] == PROMPTS[:2]
    assert all(isinstance(a["answer"], str) for a in answers)
    lm = find_causal_lm(tiny.model)
    eos = lm.eos_token_id
    assert eos is not None
    # Force the end of sequence after two tokens: the rest of the row is padding.
    bias = torch.zeros(lm.lm.config.vocab_size)
    calls = []

    def hook(_m, _args, out):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 3:
            out.logits[:, -1, eos] = 1e4
        return out

    handle = lm.lm.register_forward_hook(hook)
    try:
        with torch.inference_mode():
            ids = lm.generate_ids(trim_left(tiny.prompts[:1]), new_tokens=6, stop_at_eos=True)
    finally:
        handle.remove()
    assert bias.sum() == 0
    assert ids.shape == (1, 6)
    assert ids[0, :2].ne(PAD).all() and ids[0, 2:].eq(PAD).all()


def test_pad_left_and_trim_left() -> None:
    x = pad_left([[1, 2], [3], []], width=4)
    assert x.tolist() == [[PAD, PAD, 1, 2], [PAD, PAD, PAD, 3], [PAD] * 4]
    assert trim_left(x).tolist() == [[1, 2], [PAD, 3], [PAD, PAD]]
    with pytest.raises(ValueError):
        pad_left([[1, 2, 3]], width=2)


def test_options_are_checked(tmp_path: Path) -> None:
    with pytest.raises(TaskError, match="needs the option `path`"):
        causal_lm_task({})
    with pytest.raises(TaskError, match="is not at"):
        causal_lm_task({"path": str(tmp_path / "none")})
    (tmp_path / "empty").mkdir()
    with pytest.raises(TaskError, match="neither a GGUF file nor a folder with config.json"):
        causal_lm_task({"path": str(tmp_path / "empty")})
    with pytest.raises(TaskError, match="valid options are"):
        causal_lm_task({"path": str(tmp_path), "nope": 1})
    from compresslab.recipe import TaskSpec

    problems = check_task(TaskSpec(name="smollm2", options={"path": "x"}))
    assert problems and "has no option 'path'" in problems[0][1]
    assert {"smollm2", "causal_lm"} <= set(PROVIDERS)


def test_too_few_questions_say_what_to_change(tmp_path: Path) -> None:
    with pytest.raises(TaskError, match="lower `questions`"):
        tiny_task(tmp_path, questions=400)


def test_missing_smollm2_package_gives_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(TaskError) as e:
        smollm2_gguf()
    assert INSTALL in str(e.value) and "--no-deps" in str(e.value)


# --- the real SmolLM2-135M-Instruct ----------------------------------------------------------


def _require_smollm2() -> Path:
    try:
        return smollm2_gguf()
    except TaskError as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{e} (CI=true: this test must run)")
        pytest.skip(str(e))


@pytest.mark.slow
def test_smollm2_loads_offline_and_answers(tmp_path: Path) -> None:
    from task_data import require_wordnet

    require_wordnet()
    _require_smollm2()
    from compresslab.recipe import TaskSpec
    from compresslab.tasks import load_task

    options = {**TINY_OPTIONS, "prompts": ["What is the capital of France?"], "chat": True}
    options["answer_prompts"] = 1
    options.update(questions=40, perplexity_texts=12, calibration_texts=4, answer_tokens=12)
    del options["confirm_questions"]  # the default
    task = load_task(TaskSpec(name="smollm2", options=options))
    assert isinstance(task, CausalLMTask)
    lm = find_causal_lm(task.model)
    assert type(lm.lm).__name__ == "LlamaForCausalLM"
    assert sum(p.numel() for p in lm.lm.parameters()) == pytest.approx(134.5e6, rel=0.01)
    assert "dequantized" in task.description
    assert "Paris" in task.answers(task.model)[0]["answer"]
    accuracy = float((task.predictions(task.model) == task.eval_labels).float().mean())
    assert accuracy > 0.6, accuracy  # chance: 0.25
    # The default confirmation split: 1000 questions on other words.
    assert task.confirm_labels is not None and task.confirm_labels.shape == (1000,)
    # WordNet holds about 4000 usable questions for this tokenizer: pools of thousands.
    split = multiple_choice(read_noun_glosses(), task.tokenizer, questions=2500,
                            confirm_questions=1000, seed=0, max_definition_tokens=12)  # fmt: skip
    assert len(split.pool.labels) == 2500 and len(split.confirm.labels) == 1000
    assert not set(split.pool.answers) & set(split.confirm.answers)
    q = task.quality(task.model)
    assert 10 < q["perplexity"] < 1000 and q["perplexity_ratio"] == pytest.approx(1.0)
    # The dequantized weights are cached: the second load reads them (same model).
    again = load_task(TaskSpec(name="smollm2", options=options))
    x = task.example_inputs()
    with torch.inference_mode():
        assert torch.equal(find_causal_lm(again.model)(x), lm(x))
    assert isinstance(lm, CausalLM)
