"""A tiny causal language model and WordNet-shaped data, made in the test (no download).

Imported as a plain module (pytest puts tests/ on sys.path). The model is a randomly
initialised Llama (4 blocks, hidden 64, 4 query heads sharing 2 key/value heads, so grouped-
query attention is exercised) with a word-level tokenizer whose vocabulary holds every word of
a small synthetic ``data.noun``; both are written with ``save_pretrained`` so the task loads
them exactly as it loads a user's model folder.
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

#: Prompts of the tiny task's generation workload (words of the tiny vocabulary).
PROMPTS = ["what is a tool", "name a small animal", "where is the water"]

_SYLLABLES = ["ba", "ko", "mi", "ru", "te", "lo", "sa", "fi", "du", "ne", "po", "ga"]
_GLOSS_WORDS = [
    "a",
    "an",
    "the",
    "small",
    "large",
    "thing",
    "animal",
    "tool",
    "place",
    "person",
    "that",
    "is",
    "used",
    "for",
    "of",
    "in",
    "with",
    "to",
    "water",
    "stone",
    "wood",
    "part",
    "kind",
    "made",
    "from",
    "very",
    "old",
    "new",
    "which",
]
_SPECIAL = ["[PAD]", "[UNK]", "[BOS]", "[EOS]"]
#: Words and signs of the task's own templates (the multiple-choice prompt, text as "w: d.").
_TEMPLATE = ["The", "word", "for", "is", '"', ":", ".", ";"]

#: Options of the tiny task (small counts: seconds to build and evaluate).
TINY_OPTIONS: dict[str, Any] = {
    "questions": 24,
    "confirm_questions": 16,
    "perplexity_texts": 8,
    "calibration_texts": 8,
    "prompts": PROMPTS,
    "chat": False,
    "new_tokens": 4,
    "answer_prompts": 2,
    "answer_tokens": 6,
}


def fake_words(n: int) -> list[str]:
    """``n`` distinct lowercase made-up words of 4 to 6 letters."""
    words = ["".join(p) for p in itertools.product(_SYLLABLES, repeat=2)]
    words += ["".join(p) for p in itertools.product(_SYLLABLES, repeat=3)]
    return words[:n]


def write_fake_wordnet(folder: Path, *, n: int = 200, seed: int = 0) -> Path:
    """A ``data.noun`` in WordNet 3.0's format with ``n`` synsets of made-up words."""
    rng = random.Random(seed)
    lines = ["  1 This software and database is a stand-in for WordNet 3.0 in tests."]
    for i, word in enumerate(fake_words(n)):
        definition = " ".join(rng.choice(_GLOSS_WORDS) for _ in range(rng.randint(3, 8)))
        lex = 3 + i % 26
        lines.append(f'{1000 + i * 37:08d} {lex:02d} n 01 {word} 0 000 | {definition}; "x"')
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "data.noun"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def tiny_tokenizer(words: list[str]) -> Any:
    """A word-level fast tokenizer: one token per whitespace-separated word."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(dict.fromkeys(_SPECIAL + words))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        bos_token="[BOS]",
        eos_token="[EOS]",
    )


def tiny_llama(vocab_size: int, *, seed: int = 0, layers: int = 4) -> Any:
    """A randomly initialised Llama: hidden 64, 4 query heads over 2 KV heads, MLP 128."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    # Larger weights than the default init, so that compression visibly changes outputs.
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.mul_(4.0)
    return model


def write_tiny_model(folder: Path, wordnet: Path, *, seed: int = 0) -> Path:
    """Save a tiny Llama and its tokenizer (vocabulary: every word of ``wordnet``)."""
    text = wordnet.read_text(encoding="utf-8")
    words = sorted({w for w in text.replace(";", " ").replace('"', " ").split() if w.isalpha()})
    words += [w for p in PROMPTS for w in p.split()] + _TEMPLATE
    tokenizer = tiny_tokenizer(words)
    model = tiny_llama(len(tokenizer), seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def tiny_task(tmp: Path, **options: Any) -> Any:
    """The ``causal_lm`` task on a tiny model and a synthetic WordNet under ``tmp``."""
    from compresslab.tasks.causal_lm import causal_lm_task

    wordnet = write_fake_wordnet(tmp / "wordnet")
    folder = write_tiny_model(tmp / "model", wordnet)
    return causal_lm_task(
        {**TINY_OPTIONS, "path": str(folder), "wordnet_path": str(wordnet), **options}
    )
