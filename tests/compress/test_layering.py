"""The package's layering inside compress/: method modules never import each other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import compresslab.compress

COMPRESS = Path(compresslab.compress.__file__).parent

#: One module per compression method.
METHOD_MODULES = ("prune", "sparsify", "quantize", "bnb", "ao", "precision")
#: What a method module may import from compress/: the interface and the shared helpers.
SHARED = {"base", "layers", "recovery"}
#: Layers above compress/ (it may import recipe, errors and the shared bottom modules only).
ABOVE = ("energy", "measure", "protocol", "search", "report", "lab", "api", "cli", "export")


def _imports(path: Path) -> set[str]:
    """Every module a file imports, also inside functions (lazy imports), as dotted names."""
    out: set[str] = set()
    package = "compresslab.compress"
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against compresslab.compress
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            out.add(module)
            # ``from compresslab.compress import bnb`` imports a submodule by name.
            out |= {f"{module}.{alias.name}" for alias in node.names}
    return out


def _compress_submodules(imports: set[str]) -> set[str]:
    prefix = "compresslab.compress."
    return {m[len(prefix) :].split(".")[0] for m in imports if m.startswith(prefix)}


def test_the_method_modules_exist() -> None:
    on_disk = {p.stem for p in COMPRESS.glob("*.py")}
    assert set(METHOD_MODULES) | SHARED <= on_disk


@pytest.mark.parametrize("name", METHOD_MODULES)
def test_a_method_module_imports_no_other_method(name: str) -> None:
    used = _compress_submodules(_imports(COMPRESS / f"{name}.py"))
    stray = used - SHARED
    assert not stray, f"compress/{name}.py imports compress modules {sorted(stray)}"


def test_the_import_scan_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text(
        "def f():\n    from compresslab.compress.prune import x\n"
        "from .bnb import y\nfrom compresslab.compress import ao\n"
    )
    assert _compress_submodules(_imports(src)) >= {"prune", "bnb", "ao"}


@pytest.mark.parametrize("path", sorted(COMPRESS.glob("*.py")), ids=lambda p: p.name)
def test_compress_imports_nothing_from_the_layers_above(path: Path) -> None:
    above = {m for m in _imports(path) if m.split(".")[:2] in [["compresslab", a] for a in ABOVE]}
    assert not above, f"compress/{path.name} imports {sorted(above)}"
