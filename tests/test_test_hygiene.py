"""The tests themselves: every test checks something that could fail (read from the source)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent

#: Calls that check: ``pytest.raises``, ``pytest.warns``, ``pytest.fail``.
CHECKING_CALLS = ("raises", "warns", "fail")
#: Helpers whose names start so check too (``assert_same_outputs``, ``check_report`` ...).
CHECKING_PREFIXES = ("assert_", "check_", "expect_")


def _checks(node: ast.AST) -> bool:
    """Whether ``node`` holds an ``assert`` or a call that checks."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Assert):
            return True
        if isinstance(sub, ast.Call):
            func = sub.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in CHECKING_CALLS or name.startswith(CHECKING_PREFIXES):
                return True
    return False


def unchecked_tests(source: str) -> list[tuple[int, str]]:
    """The ``test_*`` functions (line, name) of a module's source that check nothing."""
    return [
        (node.lineno, node.name)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
        and not _checks(node)
    ]


def test_every_test_checks_something() -> None:
    files = sorted(TESTS.rglob("test_*.py"))
    assert len(files) > 50  # the walk found the suite
    missing = [
        f"{path.relative_to(TESTS)}:{line} {name}"
        for path in files
        for line, name in unchecked_tests(path.read_text())
    ]
    assert missing == [], (
        "these tests check nothing that could fail: add an assert, pytest.raises or "
        f"pytest.warns, or call a helper named {', '.join(p + '...' for p in CHECKING_PREFIXES)}"
        f": {missing}"
    )


def test_the_check_finds_a_test_that_only_runs_code() -> None:
    source = (
        "import pytest\n"
        "def test_runs_only():\n    len([1])\n"
        "def test_asserts():\n    assert len([1]) == 1\n"
        "def test_raises():\n    with pytest.raises(ValueError):\n        int('x')\n"
        "def test_helper():\n    check_figures(1)\n"
        "class TestGroup:\n    def test_in_a_class(self):\n        print(1)\n"
    )
    assert unchecked_tests(source) == [(2, "test_runs_only"), (12, "test_in_a_class")]
