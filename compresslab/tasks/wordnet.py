"""WordNet noun glosses labelled by their lexicographer category (noun.animal, noun.food ...).

Reads the WordNet 3.0 database file ``data.noun`` (Debian package ``wordnet-base``). Each synset
line holds its byte offset, its lexicographer file number (``05`` = ``noun.animal``) as the
second field and its gloss after ``" | "``; the gloss is a definition followed by quoted usage
examples (``; "..."``), which are dropped: the text to classify is the definition alone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from compresslab.errors import TaskError
from compresslab.tasks.data import require_path, stable_order

#: Where ``apt-get install wordnet-base`` puts the noun database.
DEFAULT_DATA_NOUN = Path("/usr/share/wordnet/data.noun")

#: The noun lexicographer files of WordNet 3.0 by number (``lexnames``), without ``noun.``.
NOUN_LEXFILES: dict[int, str] = {
    3: "Tops",
    4: "act",
    5: "animal",
    6: "artifact",
    7: "attribute",
    8: "body",
    9: "cognition",
    10: "communication",
    11: "event",
    12: "feeling",
    13: "food",
    14: "group",
    15: "location",
    16: "motive",
    17: "object",
    18: "person",
    19: "phenomenon",
    20: "plant",
    21: "possession",
    22: "process",
    23: "quantity",
    24: "relation",
    25: "shape",
    26: "state",
    27: "substance",
    28: "time",
}

#: The default eight categories: concrete, distinct, each with over 2000 synsets.
DEFAULT_CATEGORIES: tuple[str, ...] = (
    "animal",
    "artifact",
    "body",
    "food",
    "location",
    "person",
    "plant",
    "substance",
)


@dataclass(frozen=True)
class Gloss:
    """One noun synset: its offset in ``data.noun``, its category and its definition.

    ``word`` is the synset's first word as WordNet writes it (``hot_dog``, ``Paris``).
    """

    offset: int
    category: str
    definition: str
    word: str = ""


@dataclass(frozen=True)
class TextSplit:
    """Texts with integer labels, split into train and test; ``classes[label]`` names a label.

    ``test_texts`` is the evaluation pool (the test split, then the extra held-out texts);
    ``confirm_texts`` the confirmation split. The ``*_offsets`` are the glosses' offsets in
    ``data.noun``, which identify them (the splits share none).
    """

    classes: tuple[str, ...]
    train_texts: list[str]
    train_labels: list[int]
    test_texts: list[str]
    test_labels: list[int]
    confirm_texts: list[str] = field(default_factory=list)
    confirm_labels: list[int] = field(default_factory=list)
    train_offsets: list[int] = field(default_factory=list)
    test_offsets: list[int] = field(default_factory=list)
    confirm_offsets: list[int] = field(default_factory=list)


def wordnet_path(path: str | Path | None) -> Path:
    """The ``data.noun`` file (``path`` may also be the folder that holds it).

    Raises:
        TaskError: it does not exist; the message names the Debian package.
    """
    p = require_path(
        path or DEFAULT_DATA_NOUN,
        what="the WordNet noun database (data.noun)",
        package="wordnet-base",
        option="wordnet_path",
    )
    if p.is_dir():
        p = require_path(
            p / "data.noun",
            what="the WordNet noun database (data.noun)",
            package="wordnet-base",
            option="wordnet_path",
        )
    return p


def definition_of(gloss: str) -> str:
    """The definition part of a gloss: the text before its first quoted example."""
    text = gloss.strip()
    cut = text.find('"')
    if cut >= 0:
        text = text[:cut]
    return text.rstrip(" ;:(")


def read_noun_glosses(*, path: str | Path | None = None) -> list[Gloss]:
    """Every noun synset of ``data.noun`` with a non-empty definition, in file order.

    Args:
        path: the ``data.noun`` file or its folder (default: the Debian location).

    Raises:
        TaskError: the file is missing or is not a WordNet data file.
    """
    p = wordnet_path(path)
    out: list[Gloss] = []
    with p.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("  "):  # the license header
                continue
            head, sep, gloss = line.partition(" | ")
            fields = head.split()
            if not sep or len(fields) < 3 or not fields[0].isdigit() or not fields[1].isdigit():
                continue
            category = NOUN_LEXFILES.get(int(fields[1]))
            definition = definition_of(gloss)
            if category is None or not definition:
                continue
            word = fields[4] if len(fields) > 4 else ""
            out.append(Gloss(int(fields[0]), category, definition, word))
    if not out:
        raise TaskError(
            f"{p} holds no WordNet noun synsets: point `wordnet_path` at WordNet 3.0's "
            "data.noun (`apt-get install wordnet-base` puts it in /usr/share/wordnet)"
        )
    return out


def category_names(categories: Sequence[str]) -> tuple[str, ...]:
    """Categories as bare lexicographer names (``noun.animal`` and ``animal`` both work).

    Raises:
        TaskError: a name is unknown or repeated, or fewer than two are given.
    """
    names = []
    for c in categories:
        name = str(c).removeprefix("noun.")
        if name not in NOUN_LEXFILES.values():
            raise TaskError(
                f"unknown WordNet noun category '{c}': use some of "
                f"{', '.join(NOUN_LEXFILES.values())}"
            )
        names.append(name)
    if len(set(names)) != len(names):
        raise TaskError(f"categories {list(categories)} name a category twice: list each once")
    if len(names) < 2:
        raise TaskError("a classification task needs at least two categories")
    return tuple(names)


def wordnet_split(
    *,
    categories: Sequence[str] = DEFAULT_CATEGORIES,
    train_per_class: int,
    test_per_class: int,
    extra_test_per_class: int = 0,
    confirm_per_class: int = 0,
    seed: int = 0,
    path: str | Path | None = None,
) -> TextSplit:
    """A stratified, seeded, stable split of glosses from ``categories``.

    Definitions shared by several synsets are dropped (they could land in two splits or
    under two labels). Within each category, synsets are ranked by :func:`stable_order`; the
    first ``test_per_class`` are test, the next ``train_per_class`` train, the next
    ``extra_test_per_class`` extra test texts, and the **last** ``confirm_per_class`` the
    confirmation split (taken from the end, so that growing the pool never changes it, and
    growing either never changes the train or test split). Each part is then interleaved in a
    seeded order, so any prefix of it mixes the classes; the evaluation pool is the test split
    followed by the extra texts.

    Raises:
        TaskError: the data is missing, or a category has too few synsets for the counts (the
            message names the option to lower and the category).
    """
    classes = category_names(categories)
    glosses = read_noun_glosses(path=path)
    counts = Counter(g.definition for g in glosses)
    by_class: dict[str, list[Gloss]] = {c: [] for c in classes}
    for g in glosses:
        if g.category in by_class and counts[g.definition] == 1:
            by_class[g.category].append(g)
    need = train_per_class + test_per_class
    parts: dict[str, list[tuple[Gloss, int]]] = {
        k: [] for k in ("train", "test", "extra", "confirm")
    }
    for label, c in enumerate(classes):
        pool = by_class[c]
        _check_room(
            c,
            len(pool),
            train=train_per_class,
            test=test_per_class,
            extra=extra_test_per_class,
            confirm=confirm_per_class,
        )
        ranked = stable_order(pool, seed=seed, salt="split", key=lambda g: g.offset)
        parts["test"] += [(g, label) for g in ranked[:test_per_class]]
        parts["train"] += [(g, label) for g in ranked[test_per_class:need]]
        parts["extra"] += [(g, label) for g in ranked[need : need + extra_test_per_class]]
        parts["confirm"] += [(g, label) for g in ranked[len(ranked) - confirm_per_class :]]
    train, test, extra, confirm = (
        stable_order(parts[k], seed=seed, salt=k, key=lambda t: t[0].offset)
        for k in ("train", "test", "extra", "confirm")
    )
    test += extra
    return TextSplit(
        classes=classes,
        train_texts=[g.definition for g, _ in train],
        train_labels=[label for _, label in train],
        test_texts=[g.definition for g, _ in test],
        test_labels=[label for _, label in test],
        confirm_texts=[g.definition for g, _ in confirm],
        confirm_labels=[label for _, label in confirm],
        train_offsets=[g.offset for g, _ in train],
        test_offsets=[g.offset for g, _ in test],
        confirm_offsets=[g.offset for g, _ in confirm],
    )


def _check_room(
    category: str, usable: int, *, train: int, test: int, extra: int, confirm: int
) -> None:
    """Raise a :class:`TaskError` naming the option to lower when ``category`` runs out.

    Raises:
        TaskError: ``usable`` synsets cannot hold the counts.
    """
    if usable < train + test:
        raise TaskError(
            f"WordNet category '{category}' has {usable} usable synsets, fewer than "
            f"train_per_class + test_per_class = {train + test}: lower the counts or drop "
            f"'{category}'"
        )
    steps = (
        ("extra_test_per_class", extra, "train_per_class + test_per_class"),
        ("confirm_per_class", confirm, "train_per_class + test_per_class + extra_test_per_class"),
    )
    taken = train + test
    for option, count, before in steps:
        if usable < taken + count:
            raise TaskError(
                f"WordNet category '{category}' has {usable} usable synsets, fewer than "
                f"{before} + {option} = {taken + count}: lower `{option}` (at most "
                f"{usable - taken} for '{category}') or drop '{category}'"
            )
        taken += count
