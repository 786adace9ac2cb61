"""README.md tells the truth about the repository: its trees, its commands, its example."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "compresslab"


def _readme() -> str:
    return (ROOT / "README.md").read_text(encoding="utf-8")


def _tree(first_line: str) -> list[str]:
    """The entries (first word of each line) of the code block that starts with ``first_line``."""
    block = re.search(rf"^```\n({re.escape(first_line)}\n.*?)^```", _readme(), flags=re.S | re.M)
    assert block, f"the README shows a tree starting with {first_line!r}"
    return [line.split()[0] for line in block.group(1).splitlines()[1:] if line.strip()]


def test_the_package_tree_names_every_module_and_package_once() -> None:
    entries = _tree("compresslab/")
    assert len(entries) == len(set(entries)), "an entry is listed twice"
    present = {p.name for p in PACKAGE.glob("*.py")} | {
        p.parent.name + "/" for p in PACKAGE.glob("*/__init__.py")
    }
    assert set(entries) == present, (
        f"the README's package tree is out of date: missing {sorted(present - set(entries))}, "
        f"gone {sorted(set(entries) - present)}"
    )


@pytest.mark.slow  # git ls-files
def test_the_repository_tree_names_what_is_there() -> None:
    first = _readme().split("## The repository", 1)[1].split("```\n", 2)[1].splitlines()[0]
    entries = [first.split()[0], *_tree(first)]
    missing = [e for e in entries if not (ROOT / e.rstrip("/")).exists()]
    assert not missing, missing
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.split()
    folders = {f.split("/")[0] + "/" for f in tracked if "/" in f and not f.startswith(".")}
    assert folders <= set(entries), f"top folders not in the tree: {folders - set(entries)}"


def test_the_two_commands_are_make_targets() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    shown = set(re.findall(r"^make (\w+)", _readme(), flags=re.M))
    assert {"demo", "test"} <= shown
    for target in shown:
        assert re.search(rf"^{target}:", makefile, flags=re.M), target


def test_the_python_example_uses_names_that_exist() -> None:
    import compresslab
    from compresslab import lab
    from compresslab.protocol import EnergyResult

    (block,) = re.findall(r"```python\n(.*?)```", _readme(), flags=re.S)
    tree = ast.parse(block)
    owners = {"compresslab": compresslab, "lab": lab, "study": lab.Study, "res": EnergyResult}
    used = {
        (node.value.id, node.attr)
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
    }
    assert used, "the example calls the API"
    for owner, attr in used:
        if owner in owners:
            target = owners[owner]
            fields = getattr(target, "__dataclass_fields__", {})
            assert hasattr(target, attr) or attr in fields, f"{owner}.{attr}"
