"""report.md shows what the recipe (or a user's code) gave as text, in any markdown renderer."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from markdown_it import MarkdownIt
from tests_support import sample_result

from compresslab.report import render_markdown, write_report
from compresslab.report.text import given, md, plain

SCRIPT = "<script>alert(1)</script>"


def hostile_result():  # type: ignore[no-untyped-def]
    result = sample_result()
    trials = list(result.trials)
    trials[1] = dataclasses.replace(trials[1], variant=f"[x](javascript:alert(1)) {SCRIPT}")
    trials[3] = dataclasses.replace(trials[3], error="VariantError: <img src=x onerror=alert(1)>")
    info = dataclasses.replace(
        result.info,
        projection=dataclasses.replace(result.info.projection, currency=SCRIPT),
        task="**bold** _it_ `code` <b>task</b>",
    )
    return dataclasses.replace(
        result,
        trials=trials,
        recipe_name="unit<script>",
        study_name=f"study {SCRIPT} | pipe",
        storage=f"sqlite:///tmp/{SCRIPT}.db",
        info=info,
    )


def rendered_html(markdown: str) -> str:
    return MarkdownIt("commonmark").enable("table").render(markdown)


def test_no_recipe_text_becomes_markup_in_a_commonmark_renderer() -> None:
    text = render_markdown(hostile_result())
    out = rendered_html(text)
    assert "<script" not in out and "<img src=x" not in out and "<b>task" not in out
    assert 'href="javascript' not in out
    # Only the report's own links and pictures: pareto.html, trials.csv, two PNGs.
    assert out.count("<a ") == 2 and out.count("<img ") == 2
    assert "<strong>bold</strong>" not in out and "<em>it</em>" not in out
    # Shown as written: the renderer turns the entities back into the characters.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert "study &lt;script&gt;" in out and "| pipe" in out
    assert "**bold** _it_ `code` &lt;b&gt;task&lt;/b&gt;" in out
    # The lab's own markup still works, and the given text is marked nowhere in the output.
    assert "<h2>Baseline</h2>" in out and "<table>" in out
    assert "\ue000" not in text and "\ue001" not in text


def test_ordinary_names_stay_readable_in_the_markdown_source() -> None:
    text = render_markdown(sample_result())
    assert "| prune_channels(ratio=0.5) |" in text  # no backslash in a plain variant label
    assert "study unit." in text


def test_the_html_report_is_still_escaped_and_unmarked(tmp_path: Path) -> None:
    write_report(hostile_result(), tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "\ue000" not in page and "\ue001" not in page


def test_given_text_cannot_forge_the_marks() -> None:
    forged = given("a\ue001 <b>\ue000c")
    assert plain(forged) == "a <b>c"
    assert md(forged) == "a &lt;b&gt;c"
    assert md(f"`{given('x')}` | y", cell=True) == "`x` \\| y"
