"""The manual in docs/ tells the truth about the code: generated pages, recipes, examples, links."""

from __future__ import annotations

import copy
import importlib
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field

from compresslab.api import load_recipe
from compresslab.recipe import Recipe
from compresslab.recipe.reference import methods_reference, recipe_reference

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
PAGES = sorted(DOCS.rglob("*.md"))
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", flags=re.S | re.M)


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _blocks(path: Path, language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(_text(path)) if lang == language]


def _section(text: str, heading: str) -> str:
    """The text under ``heading`` (a whole heading line), up to the next heading of its level."""
    level = heading.split(" ", 1)[0]
    start = text.index("\n" + heading + "\n") + len(heading) + 2
    end = re.search(rf"^{level} ", text[start:], flags=re.M)
    return text[start : start + end.start()] if end else text[start:]


# --- the front page -------------------------------------------------------------------------


def test_the_readme_is_read_in_ten_minutes() -> None:
    lines = _text(README).count("\n")
    assert lines <= 300, f"README.md has {lines} lines; move detail into docs/ (at most 300)"


# --- generated pages ----------------------------------------------------------------------------


def test_the_recipe_reference_is_generated_from_the_schema() -> None:
    committed = _text(DOCS / "reference" / "recipe.md")
    assert committed == recipe_reference(), (
        "docs/reference/recipe.md differs from the recipe schema: run `make docs`"
    )


def test_the_methods_reference_is_generated_from_the_registry() -> None:
    from compresslab.compress import METHODS

    committed = _text(DOCS / "reference" / "methods.md")
    assert committed == methods_reference(METHODS), (
        "docs/reference/methods.md differs from the method registry: run `make docs`"
    )


def test_the_reference_lists_every_field_of_every_section() -> None:
    page = _text(DOCS / "reference" / "recipe.md")
    for path, model in _models(Recipe, ""):
        title = f"## `{path}`" if path else "## Top level"
        assert title in page, title
        section = _section(page, title)
        for name in model.model_fields:
            assert f"| `{name}` |" in section, f"{path}.{name}"


def _models(model: Any, path: str) -> list[tuple[str, Any]]:
    """The schema's sections reachable through plain model fields (not through unions)."""
    from pydantic import BaseModel

    found = [(path, model)]
    for name, field in model.model_fields.items():
        ann = field.annotation
        inner = (getattr(ann, "__args__", None) or [None])[0]
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            found += _models(ann, f"{path}.{name}" if path else name)
        elif isinstance(inner, type) and issubclass(inner, BaseModel) and "list" in str(ann):
            found += _models(inner, f"{path}.{name}[]" if path else f"{name}[]")
    return found


@pytest.mark.slow
def test_the_generator_runs_without_heavy_libraries() -> None:
    heavy = ("torch", "pandas", "optuna")
    probe = (
        "import sys, runpy, io, contextlib\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    runpy.run_module('compresslab.recipe.reference', run_name='__main__')\n"
        f"print([m for m in {heavy!r} if m in sys.modules])\n"
        "sys.stderr.write(out.getvalue())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.strip() == "[]"
    assert done.stderr == _text(DOCS / "reference" / "recipe.md")


class _Knobs(BaseModel):
    """Knobs for a test of where the generator finds a field's description.

    Attributes:
        from_attributes: told in the docstring's Attributes section.
    """

    model_config = ConfigDict(extra="forbid")

    from_field: int = Field(default=1, ge=0, le=9, description="told by Field")
    #: told by a comment
    #: over two lines
    from_comment: str = "x"
    from_attributes: bool = False
    undocumented: float | None = None


def test_the_generator_reads_every_kind_of_description() -> None:
    from compresslab.recipe import reference

    section = reference._render_section(reference._Section("knobs", _Knobs), {}, set())
    rows = {line.split("|")[1].strip(): line for line in section.splitlines() if "| `" in line}
    assert "told by Field" in rows["`from_field`"] and "in [0, 9]" in rows["`from_field`"]
    assert "told by a comment over two lines" in rows["`from_comment`"]
    assert "told in the docstring" in rows["`from_attributes`"]
    assert rows["`undocumented`"].endswith("| number or null | `null` |  |  |")
    assert "Attributes:" not in section  # the section's prose is the docstring without it


# --- recipes shown in the docs --------------------------------------------------------------


def test_the_docs_show_the_shipped_default_recipe_exactly() -> None:
    page = _text(DOCS / "recipes.md")
    (shown, *_) = [b for _, b in FENCE.findall(_section(page, "## The default recipe"))]
    assert shown == _text(ROOT / "recipes" / "digits.yaml")


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _recipe_blocks() -> list[tuple[str, dict[str, Any]]]:
    """Every YAML block of docs/ made only of recipe keys, with the page it is on."""
    found = []
    for page in PAGES:
        for body in _blocks(page, "yaml"):
            data = yaml.safe_load(body)
            if isinstance(data, dict) and data and set(data) <= set(Recipe.model_fields):
                found.append((str(page.relative_to(ROOT)), data))
    return found


def test_every_recipe_shown_in_the_docs_validates(tmp_path: Path) -> None:
    shipped = yaml.safe_load(_text(ROOT / "recipes" / "digits.yaml"))
    blocks = _recipe_blocks()
    whole = [d for _, d in blocks if {"name", "task", "compression"} <= set(d)]
    assert len(whole) >= 2, "docs/recipes.md shows the default recipe and one using every section"
    for where, data in blocks:
        # A fragment (an `energy:` section alone, say) is checked inside the default recipe.
        recipe = (
            data if {"name", "task", "compression"} <= set(data) else _deep_merge(shipped, data)
        )
        recipe = {**recipe, "output": str(tmp_path)}
        try:
            load_recipe(recipe)
        except Exception as e:
            raise AssertionError(f"a recipe shown in {where} is invalid: {e}") from e


def test_the_every_section_example_uses_every_section(tmp_path: Path) -> None:
    page = _text(DOCS / "recipes.md")
    (shown, *_) = [b for _, b in FENCE.findall(_section(page, "## Every section, by example"))]
    data = yaml.safe_load(shown)
    assert set(data) == set(Recipe.model_fields)
    recipe = load_recipe({**data, "output": str(tmp_path)})
    assert recipe.name == "digits" and recipe.search.sampler == "auto"
    assert {m.method for m in recipe.compression} == {"prune_channels", "dynamic_int8", "bf16"}
    # Its energy, search, check and report values are the defaults, as the page says.
    for section in ("energy", "search", "check", "report", "carbon"):
        spec = getattr(recipe, section)
        assert spec == type(spec)(), f"{section}: the example says its values are the defaults"


def test_every_task_option_is_documented() -> None:
    page = _section(_text(DOCS / "recipes.md"), "### Task options")
    modules = {
        "digits": "digits",
        "minilm-wordnet": "minilm",
        "fashion-mnist": "fashion_mnist",
        "hf_local": "hf_local",
        "smollm2": "smollm2",
        "causal_lm": "causal_lm",
    }
    from compresslab.tasks import PROVIDERS

    assert set(modules) == set(PROVIDERS), "a new task: add its options to docs/recipes.md"
    bullets = {
        m.group(1): m.group(0)
        for m in re.finditer(r"^- `([\w-]+)`.*?(?=^- |\Z)", page, flags=re.S | re.M)
    }
    for task, module in modules.items():
        options = importlib.import_module(f"compresslab.tasks.{module}").DEFAULT_OPTIONS
        bullet = next(
            text for name, text in bullets.items() if task in text.split(":")[0] or name == task
        )
        missing = [o for o in options if f"`{o}`" not in bullet]
        assert not missing, f"task {task}: options {missing} are not in docs/recipes.md"


# --- the Python examples ------------------------------------------------------------------------

#: Sections of docs/api.md whose examples run a search (the slow test runs them).
SEARCH_SECTIONS = ("## Searching from Python", "## The CI gate")


def _api_examples(*, with_search: bool) -> list[str]:
    page = _text(DOCS / "api.md")
    chunks = re.split(r"^(?=## )", page, flags=re.M)
    out = []
    for chunk in chunks:
        searching = chunk.startswith(SEARCH_SECTIONS)
        if searching and not with_search:
            continue
        out += [b for lang, b in FENCE.findall(chunk) if lang == "python"]
    return [b for b in out if "# doc: skip" not in b]


def _run_examples(blocks: list[str], folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (folder / "recipes").symlink_to(ROOT / "recipes")
    monkeypatch.chdir(folder)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    for i, block in enumerate(blocks):
        try:
            exec(compile(block, f"docs/api.md (python block {i + 1})", "exec"), namespace)
        except Exception as e:
            raise AssertionError(f"docs/api.md's example {i + 1} fails: {e!r}\n{block}") from e


def test_the_api_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = _api_examples(with_search=False)
    assert len(blocks) >= 3
    _run_examples(blocks, tmp_path, monkeypatch)


@pytest.mark.slow
def test_the_api_examples_run_with_a_search(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, digits_task: Any
) -> None:
    blocks = _api_examples(with_search=True)
    assert any("lab.search(" in b for b in blocks)
    _run_examples(blocks, tmp_path, monkeypatch)
    assert (tmp_path / "reports" / "digits" / "report.md").is_file()
    assert (tmp_path / "reports" / "digits" / "best" / "weights.safetensors").is_file()


def test_a_skipped_example_is_marked_and_left_out() -> None:
    page = _text(DOCS / "api.md")
    skipped = [b for lang, b in FENCE.findall(page) if lang == "python" and "# doc: skip" in b]
    assert skipped and all(b not in _api_examples(with_search=True) for b in skipped)


# --- links, commands, protocol, environment ----------------------------------------------------


def _slugs(text: str) -> set[str]:
    """GitHub's anchors of a page's headings (a repeated heading gets -1, -2, ...)."""
    seen: dict[str, int] = {}
    out = set()
    for heading in re.findall(r"^#{1,6} (.+)$", FENCE.sub("", text), flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


@pytest.mark.parametrize("page", [README, *PAGES], ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    text = FENCE.sub("", _text(page))
    broken = []
    for target in re.findall(r"\[[^\]]*\]\(([^)\s]+)\)", text):
        if re.match(r"^[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in _slugs(_text(file)):
            broken.append(f"{target}: no heading with that anchor")
    assert not broken, f"{page.relative_to(ROOT)}: {broken}"


def test_every_command_and_option_is_in_the_commands_page() -> None:
    import typer.main

    from compresslab.cli import app

    page = _text(DOCS / "commands.md")
    group = typer.main.get_command(app)
    missing = []
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        if command.hidden:
            continue
        heading = f"## `compresslab {name}`"
        if f"\n{heading}\n" not in page:
            missing.append(heading)
            continue
        section = _section(page, heading)
        for param in command.params:
            if getattr(param, "hidden", False):
                continue
            for flag in [*param.opts, *param.secondary_opts]:
                if flag.startswith("-") and f"`{flag}" not in section:
                    missing.append(f"{name} {flag}")
    assert not missing, f"docs/commands.md lacks: {missing}"
    readme = _text(README)
    assert all(f"compresslab {name} " in readme for name in group.commands)  # type: ignore[attr-defined]


def _protocol_items() -> dict[int, str]:
    page = _text(DOCS / "protocol.md")
    return {int(n): t for n, t in re.findall(r"^(\d+)\. \*\*([^*.]+?)\.?\*\*", page, flags=re.M)}


def test_the_protocol_is_numbered_once_and_cited_by_those_numbers() -> None:
    items = _protocol_items()
    assert list(items) == list(range(1, len(items) + 1)) and len(items) >= 10
    cited = []
    for page in [README, *PAGES]:
        for match in re.finditer(r"\bitems? (\d+)(?:(?:,| and| to) (\d+))*", _text(page)):
            cited += [int(n) for n in re.findall(r"\d+", match.group(0))]
    assert cited and all(n in items for n in cited), sorted(set(cited) - set(items))


def test_the_protocol_package_points_to_the_protocol_page() -> None:
    import compresslab.protocol as protocol

    doc = protocol.__doc__ or ""
    assert "docs/protocol.md" in doc
    index = re.search(r"\((1 [^)]*)\)", " ".join(doc.split()))
    assert index, "the docstring indexes the items by number"
    named = {int(n): t.strip() for n, t in re.findall(r"(\d+) ([a-z -]+)", index.group(1))}
    items = _protocol_items()
    assert sorted(named) == sorted(items)
    for n, title in items.items():
        assert title.lower().startswith(named[n]), f"item {n}: {named[n]!r} vs {title!r}"


def test_every_environment_variable_is_documented() -> None:
    used = set()
    for path in (ROOT / "compresslab").rglob("*.py"):
        used |= set(re.findall(r"COMPRESSLAB_[A-Z_]+[A-Z]", _text(path)))
    page = _text(DOCS / "architecture.md")
    assert used and not [v for v in sorted(used) if f"`{v}`" not in page]


def test_every_carbon_region_is_documented() -> None:
    from compresslab.carbon import INTENSITY_G_PER_KWH

    section = _section(_text(DOCS / "energy.md"), "## Carbon")
    assert not [r for r in INTENSITY_G_PER_KWH if not re.search(rf"\b{r}\b", section)]


def test_the_docs_folder_is_what_the_readme_lists() -> None:
    readme = _text(README)
    listed = set(re.findall(r"\]\((docs/[^)#]+\.md)\)", readme))
    present = {str(p.relative_to(ROOT)) for p in PAGES}
    assert present == listed, f"pages not linked from the README: {sorted(present - listed)}"


def test_no_doc_page_keeps_a_placeholder() -> None:
    for page in [README, *PAGES]:
        assert "TODO" not in _text(page) and "XXX" not in _text(page), page
