"""The package's shape: short modules, short functions, no import cycle, thin ``__init__`` files.

Limits: a module of ``compresslab/`` holds at most :data:`MAX_MODULE_LINES` lines, a function or
method at most :data:`MAX_FUNCTION_LINES` (``end_lineno - lineno + 1`` of its ``def``, docstring
included); the modules import each other without a cycle (imports run when a module is
imported: not those inside a function, nor under ``if TYPE_CHECKING:``); a package's
``__init__.py`` only imports and re-exports (``compresslab/__init__.py`` may define the PEP 562
``__getattr__`` and ``__dir__`` of its lazy public names).

:data:`PENDING` lists the files still over a limit while they are being split, and
:data:`PENDING_CYCLES` the import cycles still open; a test fails when an entry is no longer
needed, so that each is removed as soon as its file is fixed.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "compresslab"

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
#: What a package's ``__init__.py`` may define, by path: the lazy public names of the package.
INIT_DEFINITIONS_ALLOWED = {"compresslab/__init__.py": {"__getattr__", "__dir__"}}

#: Files over a limit (module or function length, definitions in an ``__init__.py``) that are
#: being split; each is exempt from the limits until it is fixed, then must leave this list.
PENDING: frozenset[str] = frozenset()

#: Import cycles still open, each as the modules along it (it closes back to the first).
PENDING_CYCLES: frozenset[tuple[str, ...]] = frozenset()


def rel(path: Path, root: Path = ROOT) -> str:
    return path.relative_to(root).as_posix()


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def long_functions(tree: ast.AST) -> list[str]:
    """``name (N lines, line L)`` of every function or method over the limit."""
    return [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines, line {node.lineno})"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]


def init_definitions(path: Path, tree: ast.AST, root: Path = ROOT) -> list[str]:
    """Functions and classes an ``__init__.py`` defines beyond what it is allowed."""
    if path.name != "__init__.py":
        return []
    allowed = INIT_DEFINITIONS_ALLOWED.get(rel(path, root), set())
    return [
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        and node.name not in allowed
    ]


def problems_of(path: Path, root: Path = ROOT) -> list[str]:
    """Every limit ``path`` breaks, in words (empty when it keeps them all)."""
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text)
    where = rel(path, root)
    found = []
    lines = len(text.splitlines())
    if lines > MAX_MODULE_LINES:
        found.append(f"{where}: {lines} lines (at most {MAX_MODULE_LINES}): split it")
    found += [
        f"{where}: function {f} (at most {MAX_FUNCTION_LINES}): split it into named steps"
        for f in long_functions(tree)
    ]
    found += [
        f"{where}: __init__.py defines {name}: move it to a module and re-export it"
        for name in init_definitions(path, tree, root)
    ]
    return found


# --- imports -------------------------------------------------------------------------------------


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def import_time_nodes(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """The imports among ``body`` that run when the module is imported.

    Function bodies run later, and ``if TYPE_CHECKING:`` blocks never (their ``else`` does);
    class bodies, ``try`` and other blocks run at import.
    """
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from import_time_nodes(node.orelse)
        else:
            for field in ("body", "orelse", "finalbody", "handlers", "cases"):
                inner = getattr(node, field, None) or []
                stmts = [s for s in inner if isinstance(s, ast.stmt)]
                for handler in inner:
                    if isinstance(handler, ast.ExceptHandler | ast.match_case):
                        stmts += handler.body
                yield from import_time_nodes(stmts)


def import_graph(files: Mapping[str, Path]) -> dict[str, set[str]]:
    """Module -> the package's modules it imports at import time.

    ``from compresslab.x import name`` is an import of ``compresslab.x.name`` when that is a
    module, else of ``compresslab.x``.
    """
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in import_time_nodes(tree.body):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
                continue
            base = node.module or ""
            if node.level:  # relative: from the package, up level - 1 packages
                parts = package.split(".")
                anchor = ".".join(parts[: len(parts) - (node.level - 1)])
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.add(sub if sub in files else base)
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


def find_cycles(graph: Mapping[str, set[str]]) -> list[tuple[str, ...]]:
    """One cycle per group of modules that import each other (strongly connected component).

    Each cycle is the shortest one through the group's first module (in sorted order), given
    from that module.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    cycles = []
    for group in groups:
        start = min(group)
        paths = {start: (start,)}
        frontier = [start]
        cycle: tuple[str, ...] | None = None
        while frontier and cycle is None:  # breadth first: the shortest way back to start
            nxt_frontier = []
            for node in frontier:
                for nxt in sorted(graph[node] & group):
                    if nxt == start:
                        cycle = paths[node]
                        break
                    if nxt not in paths:
                        paths[nxt] = paths[node] + (nxt,)
                        nxt_frontier.append(nxt)
                if cycle is not None:
                    break
            frontier = nxt_frontier
        assert cycle is not None
        cycles.append(cycle)
    return sorted(cycles)


def package_graph() -> dict[str, set[str]]:
    return import_graph({module_name(p): p for p in package_files()})


def show(cycle: tuple[str, ...]) -> str:
    return " -> ".join((*cycle, cycle[0]))


# --- the limits ------------------------------------------------------------------------------


def test_modules_and_functions_are_short_and_init_files_only_re_export() -> None:
    found = [p for path in package_files() if rel(path) not in PENDING for p in problems_of(path)]
    assert found == [], "\n".join(found)


def test_each_pending_file_exists_and_still_breaks_a_limit() -> None:
    stale = []
    for name in sorted(PENDING):
        path = ROOT / name
        if not path.is_file():
            stale.append(f"{name}: no such file (remove it from PENDING)")
        elif not problems_of(path):
            stale.append(f"{name}: within every limit now (remove it from PENDING)")
    assert stale == [], "\n".join(stale)


def test_no_import_cycle() -> None:
    graph = package_graph()
    assert "compresslab.energy.base" in graph["compresslab.energy"]  # the graph was read
    open_ = []
    for cycle in find_cycles(graph):
        group = set(cycle)
        if not any(set(pending) <= group for pending in PENDING_CYCLES):
            open_.append(show(cycle))
    assert open_ == [], "import cycles:\n" + "\n".join(open_)


def test_each_pending_cycle_is_still_a_cycle() -> None:
    graph = package_graph()
    stale = [
        show(cycle)
        for cycle in sorted(PENDING_CYCLES)
        if not all(
            b in graph.get(a, set()) for a, b in zip(cycle, (*cycle[1:], cycle[0]), strict=True)
        )
    ]
    assert stale == [], "no longer cycles (remove them from PENDING_CYCLES):\n" + "\n".join(stale)


# --- the checker itself ------------------------------------------------------------------------


def test_the_import_graph_follows_import_time_imports_only(tmp_path: Path) -> None:
    pkg = tmp_path / "compresslab"
    (pkg / "sub").mkdir(parents=True)
    sources = {
        "__init__.py": "",
        "a.py": (
            "from typing import TYPE_CHECKING\n"
            "from compresslab.sub import leaf, NAME\n"
            "if TYPE_CHECKING:\n    from compresslab import c\n"
            "else:\n    import compresslab.d\n"
            "def f():\n    from compresslab import c\n"
            "class K:\n    from compresslab import e\n"
        ),
        "c.py": "",
        "d.py": "",
        "e.py": "try:\n    from . import a\nexcept ImportError:\n    pass\n",
        "sub/__init__.py": "NAME = 1\n",
        "sub/leaf.py": "from ..a import f\n",
    }
    for name, text in sources.items():
        (pkg / name).write_text(text)
    graph = import_graph({module_name(p, tmp_path): p for p in pkg.rglob("*.py")})
    assert graph["compresslab.a"] == {
        "compresslab.sub.leaf",
        "compresslab.sub",
        "compresslab.d",
        "compresslab.e",
    }
    assert graph["compresslab.e"] == {"compresslab.a"}
    assert graph["compresslab.sub.leaf"] == {"compresslab.a"}
    assert find_cycles(graph) == [("compresslab.a", "compresslab.e")]
    assert (
        show(("compresslab.a", "compresslab.e"))
        == "compresslab.a -> compresslab.e -> compresslab.a"
    )


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("mod.py", "x = 1\n" * (MAX_MODULE_LINES + 1), "401 lines"),
        ("mod.py", "def f():\n" + "    x = 1\n" * MAX_FUNCTION_LINES, "function f (81 lines"),
        ("__init__.py", "class Registry:\n    pass\n", "__init__.py defines Registry"),
    ],
)
def test_the_limits_catch_what_they_are_for(
    tmp_path: Path, name: str, text: str, expected: str
) -> None:
    path = tmp_path / "compresslab" / name
    path.parent.mkdir()
    path.write_text(text)
    problems = problems_of(path, tmp_path)
    assert len(problems) == 1 and expected in problems[0], problems
