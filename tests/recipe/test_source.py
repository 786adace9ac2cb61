"""Reading a recipe: every problem at once, each on its own line with its file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from compresslab.api import load_recipe
from compresslab.errors import RecipeError
from compresslab.recipe import read_source


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return path


def test_a_misspelt_top_level_key_is_named_with_the_key_it_resembles(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\ntask: {name: digits}\ncompresion:\n  - method: bf16\n")
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    # Not "field 'compression': Field required" at line 1 with the typo hidden behind it.
    assert str(info.value) == (
        f"{path}:3: field 'compresion': unknown key 'compresion': did you mean 'compression'?"
    )


def test_every_problem_is_listed_in_file_order_one_per_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "name: x\n"
        "task: {name: digits}\n"
        "compression: [{method: bf16}]\n"
        "energy:\n"
        "  windw_s: 1\n"
        "search:\n"
        "  seed: -1\n"
        "  trails: 5\n"
        "report: {price_per_kwh: .nan}\n",
    )
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    lines = str(info.value).splitlines()
    assert [line.split(": ", 1)[0] for line in lines] == [
        f"{path}:5",
        f"{path}:7",
        f"{path}:8",
        f"{path}:9",
    ], lines
    assert "did you mean 'window_s'?" in lines[0]
    assert "-1 is below the minimum 0; valid: integer in [0, 4294967295]" in lines[1]
    assert "did you mean 'trials'?" in lines[2]
    assert "nan is not a finite number; valid: number in [0, 100]" in lines[3]
    assert [p.line for p in info.value.problems] == [5, 7, 8, 9]
    assert info.value.line == 5 and info.value.field == "energy.windw_s"


def test_problems_of_the_space_and_the_task_are_listed_together(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "name: x\ntask: {name: digts}\ncompression:\n  - method: prune_chanels\n"
        "  - method: dynamic_int8\n    params: {ratio: 0.5}\n",
    )
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    lines = str(info.value).splitlines()
    assert len(lines) == 3, lines
    assert lines[0].startswith(f"{path}:2: field 'task.name': unknown task 'digts'")
    assert lines[1].startswith(f"{path}:4: field 'compression.0.method'")
    assert "did you mean 'prune_channels'?" in lines[1]
    assert lines[2].startswith(f"{path}:6: field 'compression.1.params.ratio'")


def test_an_unknown_key_with_no_near_match_lists_the_valid_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\ntask: {name: digits}\ncompression: [{method: bf16}]\nzzz: 1\n")
    with pytest.raises(
        RecipeError,
        match=r"unknown key 'zzz': remove it or check its spelling "
        r"\(valid keys here: description, runtime, energy",
    ):
        load_recipe(path)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a: &x 1\nb: *x\n", "YAML aliases (*x) are not allowed"),
        ("a: 1\na: 2\n", "key 'a' appears twice"),
        (
            "a: !!str 1\nb: !!int 2\nc: !!float 3\nd: !!bool true\ne: !!null ''\nf: !!map {}\n"
            "g: !!seq []\nh: !!python/none ''\n",
            "tag '!!python/none'",
        ),
    ],
)
def test_the_event_check_refuses_before_anything_is_built(
    tmp_path: Path, text: str, fragment: str
) -> None:
    with pytest.raises(RecipeError) as info:
        read_source(write(tmp_path, text))
    assert fragment in str(info.value)


def test_plain_tags_anchors_without_aliases_and_quoted_long_numbers_are_fine(
    tmp_path: Path,
) -> None:
    source = read_source(
        write(tmp_path, f"a: !!str 1\nb: &anchor 2\nc: '{'9' * 200}'\nd: [[[[1]]]]\n")
    )
    assert source.data == {"a": "1", "b": 2, "c": "9" * 200, "d": [[[[1]]]]}
    assert source.line_of(("d",)) == 4


def test_the_command_line_prints_one_line_per_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    from compresslab.cli import main

    path = write(
        tmp_path,
        "name: x\ntask: {name: digits}\ncompresion: [{method: bf16}]\nsearch: {seed: -1}\n",
    )
    monkeypatch.setattr(sys, "argv", ["compresslab", "search", str(path)])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {path}:3: field 'compresion': unknown key 'compresion': did you mean "
        "'compression'?",
        f"error: {path}:4: field 'search.seed': -1 is below the minimum 0; valid: integer in "
        "[0, 4294967295]",
    ]
