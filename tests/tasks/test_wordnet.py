from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest
from task_data import require_wordnet

from compresslab.errors import TaskError
from compresslab.tasks.data import stable_order
from compresslab.tasks.wordnet import (
    category_names,
    definition_of,
    read_noun_glosses,
    wordnet_split,
)

SAMPLE = (
    "  1 This software and database is being provided to you, the LICENSEE, by\n"
    "00015388 03 n 01 animal 0 002 @ 00004475 n 0000 | a living organism; "
    '"animals move"\n'
    "01313093 05 n 01 dog 0 000 | a domesticated canid\n"
    "01313094 05 n 01 cat 0 000 | a small feline\n"
    '07555863 13 n 01 bread 0 000 | food made from dough; "she baked bread"\n'
    "07555864 13 n 01 soup 0 000 | liquid food\n"
    "07555865 13 n 01 stew 0 000 | liquid food\n"
)


def test_definition_drops_the_quoted_examples() -> None:
    assert definition_of('a living organism; "animals move"; "x"\n') == "a living organism"
    assert definition_of("(genetics) an organism  ") == "(genetics) an organism"
    assert definition_of('female of domestic cattle: "moo-cow"') == "female of domestic cattle"


def test_parses_a_data_noun_file(tmp_path: Path) -> None:
    (tmp_path / "data.noun").write_text(SAMPLE)
    glosses = read_noun_glosses(path=tmp_path)  # the folder works too
    assert [(g.offset, g.category, g.definition) for g in glosses[:3]] == [
        (15388, "Tops", "a living organism"),
        (1313093, "animal", "a domesticated canid"),
        (1313094, "animal", "a small feline"),
    ]
    # 'liquid food' is the definition of two synsets: dropped from splits (ambiguous).
    split = wordnet_split(
        categories=["animal", "noun.food"], train_per_class=0, test_per_class=1, path=tmp_path
    )
    assert split.classes == ("animal", "food")
    assert "liquid food" not in split.test_texts
    assert sorted(split.test_labels) == [0, 1]


def test_missing_wordnet_names_the_debian_package(tmp_path: Path) -> None:
    with pytest.raises(TaskError, match="apt-get install wordnet-base"):
        read_noun_glosses(path=tmp_path / "nowhere" / "data.noun")
    (tmp_path / "data.noun").write_text("not wordnet\n")
    with pytest.raises(TaskError, match="no WordNet noun synsets"):
        read_noun_glosses(path=tmp_path / "data.noun")


def test_category_names_are_checked() -> None:
    assert category_names(["noun.animal", "plant"]) == ("animal", "plant")
    with pytest.raises(TaskError, match="unknown WordNet noun category 'animals'"):
        category_names(["animals", "plant"])
    with pytest.raises(TaskError, match="twice"):
        category_names(["plant", "noun.plant"])
    with pytest.raises(TaskError, match="at least two"):
        category_names(["plant"])


def test_too_few_synsets_says_what_to_lower(tmp_path: Path) -> None:
    (tmp_path / "data.noun").write_text(SAMPLE)
    with pytest.raises(TaskError, match="lower the counts or drop 'animal'"):
        wordnet_split(
            categories=["animal", "food"], train_per_class=2, test_per_class=1, path=tmp_path
        )


def test_stable_order_depends_only_on_seed_and_keys() -> None:
    a = stable_order(range(50), seed=3)
    assert a == stable_order(list(range(50))[::-1], seed=3)
    assert a != stable_order(range(50), seed=4)
    assert sorted(a) == list(range(50))
    # Pinned: the order is SHA-256 of (seed, salt, key), never a library's RNG stream, so a
    # split can never silently change between versions.
    assert stable_order(range(6), seed=0) == [1, 5, 4, 0, 2, 3]
    upper = stable_order(["a", "b", "c"], seed=0, key=str.upper)
    assert [s.upper() for s in upper] == stable_order(["A", "B", "C"], seed=0)


@pytest.mark.slow
def test_real_split_is_stable_stratified_and_mixed() -> None:
    require_wordnet()
    kwargs = {"train_per_class": 40, "test_per_class": 20, "seed": 0}
    a = wordnet_split(**kwargs)  # type: ignore[arg-type]
    b = wordnet_split(**kwargs)  # type: ignore[arg-type]
    assert a == b
    assert len(a.classes) == 8
    assert Counter(a.test_labels) == dict.fromkeys(range(8), 20)
    assert Counter(a.train_labels) == dict.fromkeys(range(8), 40)
    assert not set(a.train_texts) & set(a.test_texts)
    # Interleaved: the first 32 test texts (the measured energy batch) span many classes.
    assert len(set(a.test_labels[:32])) >= 6
    other = wordnet_split(train_per_class=40, test_per_class=20, seed=1)
    assert other.test_texts != a.test_texts


def _many(tmp_path: Path, per_class: int) -> Path:
    """A data.noun with ``per_class`` synsets (distinct definitions) of animal and food each."""
    lines = []
    for i in range(per_class):
        lines.append(f"{1000 + 2 * i:08d} 05 n 01 beast{i} 0 000 | animal number {i}")
        lines.append(f"{1001 + 2 * i:08d} 13 n 01 dish{i} 0 000 | food number {i}")
    (tmp_path / "data.noun").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_the_pool_grows_without_changing_train_test_or_confirmation(tmp_path: Path) -> None:
    path = _many(tmp_path, 40)
    kwargs = {"categories": ["animal", "food"], "train_per_class": 6, "test_per_class": 4}
    plain = wordnet_split(**kwargs, path=path)  # type: ignore[arg-type]
    small = wordnet_split(**kwargs, extra_test_per_class=5, confirm_per_class=3, path=path)  # type: ignore[arg-type]
    large = wordnet_split(**kwargs, extra_test_per_class=20, confirm_per_class=3, path=path)  # type: ignore[arg-type]
    for split in (small, large):
        # The training split and the first 8 pool texts are those without extras, in order.
        assert split.train_texts == plain.train_texts and split.train_offsets == plain.train_offsets
        assert (
            split.test_texts[:8] == plain.test_texts and split.test_labels[:8] == plain.test_labels
        )
        # Pool, training and confirmation share no gloss.
        pool, train, confirm = (set(split.test_offsets), set(split.train_offsets),
                                set(split.confirm_offsets))  # fmt: skip
        assert not pool & train and not pool & confirm and not train & confirm
        assert len(confirm) == 6 and Counter(split.confirm_labels) == {0: 3, 1: 3}
    assert len(small.test_texts) == 2 * (4 + 5) and len(large.test_texts) == 2 * (4 + 20)
    assert Counter(large.test_labels) == {0: 24, 1: 24}
    # Growing the pool leaves the confirmation split alone (it is drawn from the other end).
    assert small.confirm_offsets == large.confirm_offsets
    assert plain.confirm_texts == [] and plain.confirm_offsets == []


def test_running_out_names_the_option_and_the_category(tmp_path: Path) -> None:
    path = _many(tmp_path, 20)
    kwargs = {"categories": ["animal", "food"], "train_per_class": 6, "test_per_class": 4}
    with pytest.raises(TaskError, match=r"lower `extra_test_per_class` \(at most 10 for 'animal'"):
        wordnet_split(**kwargs, extra_test_per_class=11, path=path)  # type: ignore[arg-type]
    with pytest.raises(TaskError, match=r"lower `confirm_per_class` \(at most 2 for 'animal'"):
        wordnet_split(**kwargs, extra_test_per_class=8, confirm_per_class=3, path=path)  # type: ignore[arg-type]
    full = wordnet_split(**kwargs, extra_test_per_class=8, confirm_per_class=2, path=path)  # type: ignore[arg-type]
    assert len(set(full.test_offsets + full.train_offsets + full.confirm_offsets)) == 40


def _digest(texts: list[str], labels: list[int]) -> str:
    return hashlib.sha256(json.dumps([texts, labels]).encode()).hexdigest()[:16]


@pytest.mark.slow
def test_the_default_pool_starts_with_the_400_texts_of_earlier_versions() -> None:
    require_wordnet()
    split = wordnet_split(
        train_per_class=100, test_per_class=50, extra_test_per_class=450, confirm_per_class=250
    )
    # Pinned: the training split and the first 400 pool texts of the shipped recipe, exactly
    # as before the pool grew (so the head and every earlier 400-text figure stay valid).
    assert _digest(split.train_texts, split.train_labels) == "d5d2ea2ba8995b42"
    assert _digest(split.test_texts[:400], split.test_labels[:400]) == "2b1a3defe33ea714"
    assert len(split.test_texts) == 4000 and len(split.confirm_texts) == 2000
    assert Counter(split.test_labels) == dict.fromkeys(range(8), 500)
    assert Counter(split.confirm_labels) == dict.fromkeys(range(8), 250)
    offsets = [split.test_offsets, split.train_offsets, split.confirm_offsets]
    assert len(set().union(*offsets)) == sum(map(len, offsets)) == 4000 + 800 + 2000
    # Every stretch of the pool's extra part and of the confirmation split mixes the classes.
    for labels in (split.test_labels[400:432], split.test_labels[-32:], split.confirm_labels[:32]):
        assert len(set(labels)) >= 6
    # The smallest category (body: 2014 usable synsets) says what to lower.
    with pytest.raises(TaskError, match="lower `confirm_per_class` .* for 'body'"):
        wordnet_split(
            train_per_class=100, test_per_class=50, extra_test_per_class=450,
            confirm_per_class=1500,
        )  # fmt: skip
