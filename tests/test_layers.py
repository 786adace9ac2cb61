"""The package's imports follow the layering that docs/architecture.md writes down."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "compresslab"


def documented_layers() -> list[set[str]]:
    """The numbered list under '## Layers' in docs/architecture.md: backticked units, bottom up."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("\n## Layers\n", 1)[1].split("\n#", 1)[0]
    layers = []
    for line in section.splitlines():
        if re.match(r"^\d+\. ", line):
            head = line.split(":", 1)[0]
            layers.append({name.rstrip("/") for name in re.findall(r"`([^`]+)`", head)})
    return layers


def unit_of(module: str) -> str:
    """``compresslab.study.run`` -> ``study``; ``compresslab`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every compresslab module ``path`` imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "compresslab":  # `from compresslab import units`
                found.update(f"compresslab.{a.name}" for a in node.names)
            else:
                found.add(node.module)
    return {m for m in found if m.split(".")[0] == "compresslab"}


def test_the_layers_list_every_part_of_the_package_once() -> None:
    layers = documented_layers()
    listed = [name for layer in layers for name in layer]
    assert len(listed) == len(set(listed)), "a unit is listed in two layers"
    present = {p.stem for p in PACKAGE.glob("*.py")} | {
        p.parent.name for p in PACKAGE.glob("*/__init__.py")
    }
    assert set(listed) == present


def test_every_import_goes_down_the_layers() -> None:
    rank = {name: i for i, layer in enumerate(documented_layers()) for name in layer}
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        src = unit_of(module_name(path))
        for target in sorted(imports_of(path)):
            dst = unit_of(target)
            if dst != src and rank[dst] >= rank[src]:
                way = "sideways" if rank[dst] == rank[src] else "up"
                wrong.append(f"{path.relative_to(ROOT)} imports {target} ({way})")
    assert wrong == []


def test_only_the_study_package_imports_optuna() -> None:
    users = [
        str(path.relative_to(ROOT))
        for path in sorted(PACKAGE.rglob("*.py"))
        if any(
            isinstance(node, ast.Import | ast.ImportFrom)
            and any(
                (getattr(node, "module", None) or a.name).split(".")[0] == "optuna"
                for a in node.names
            )
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        )
    ]
    assert users and all(u.startswith("compresslab/study/") for u in users), users


def test_compression_methods_never_import_each_other() -> None:
    from compresslab.compress import METHODS

    method_modules = {type(m).__module__ for m in METHODS.values()}
    assert len(method_modules) >= 5
    wrong = []
    for module in sorted(method_modules):
        path = ROOT / (module.replace(".", "/") + ".py")
        others = imports_of(path) & (method_modules - {module})
        wrong += [f"{module} imports {o}" for o in sorted(others)]
    assert wrong == []


def test_the_layer_check_catches_an_upward_import(tmp_path: Path) -> None:
    # The checker itself: a bottom module importing the search would be reported.
    fake = tmp_path / "units.py"
    fake.write_text("def f():\n    from compresslab.study import run_search\n")
    assert imports_of(fake) == {"compresslab.study"}
    rank = {name: i for i, layer in enumerate(documented_layers()) for name in layer}
    assert rank["study"] > rank["units"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "code",
    [
        "import compresslab",
        "import compresslab.cli",
        "from compresslab import __version__, errors, recipe",
    ],
)
def test_light_entry_points_import_no_heavy_library(code: str) -> None:
    heavy = ("torch", "pandas", "optuna", "matplotlib")
    probe = f"{code}; import sys; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_version_and_help_answer_without_heavy_imports() -> None:
    probe = (
        "import sys; from compresslab.cli import main; sys.argv = ['compresslab', '{}'];\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code\n"
        "print([m for m in ('torch', 'pandas', 'optuna') if m in sys.modules])"
    )
    for flag in ("--version", "--help"):
        out = subprocess.run(
            [sys.executable, "-c", probe.format(flag)],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        assert out.stdout.strip().splitlines()[-1] == "[]", (flag, out.stdout)
