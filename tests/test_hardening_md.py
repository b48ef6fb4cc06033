"""tests/HARDENING.md lists every hostile or careless input and the test that feeds it: each test
named there must exist and be marked ``hostile``, and each test marked ``hostile`` must be named
there, so the table cannot promise a test that was renamed or removed, and ``pytest -m hostile``
runs exactly the cases it lists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
TABLE = TESTS / "HARDENING.md"
CATEGORIES = {
    "unbounded resources", "silent corruption", "links and locations", "mismatched artifacts",
    "outputs that lie or break", "one rule for every failure",
    # Hardening, round two:
    "files read back", "interrupted runs", "input at scale", "degenerate datasets",
    "text on any terminal", "every message names the real cause", "documented commands",
}
# `tests/data/test_x.py::test_name` or `tests/test_x.py::test_name[param]`
_TEST_ID = re.compile(r"`tests/((?:\w+/)*test_\w+\.py)::(test_\w+)(\[[^\]`]*\])?`")


def _rows() -> list[list[str]]:
    rows = []
    for line in TABLE.read_text(encoding="utf-8").splitlines():
        if line.startswith("|") and not set(line) <= set("|- :"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows[1:]  # the header


def _is_hostile_mark(node: ast.expr) -> bool:
    """``pytest.mark.hostile``, called or not."""
    node = node.func if isinstance(node, ast.Call) else node
    return ast.unparse(node) == "pytest.mark.hostile"


def _test_functions(path: Path) -> dict[str, bool]:
    """Each test function of the file at ``path``: whether it is marked hostile (by a decorator,
    or by the module's ``pytestmark``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    module_marked = False
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets
        ):
            value = node.value
            marks = value.elts if isinstance(value, (ast.List, ast.Tuple)) else [value]
            module_marked = any(_is_hostile_mark(mark) for mark in marks)
    return {node.name: module_marked or any(_is_hostile_mark(d) for d in node.decorator_list)
            for node in tree.body
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def _named() -> set[tuple[str, str]]:
    """(path below tests/, test function) of every test the table names."""
    return {(path, function) for row in _rows() for path, function, _ in _TEST_ID.findall(row[-1])}


def test_every_row_has_a_category_a_case_an_outcome_and_existing_tests():
    rows = _rows()
    assert len(rows) >= 40, f"only {len(rows)} rows"
    problems = []
    for row in rows:
        if len(row) != 4:
            problems.append(f"not 4 cells: {row}")
            continue
        category, case, outcome, tests = row
        if category.lower() not in CATEGORIES:
            problems.append(f"unknown category {category!r} in {row}")
        if not case or not outcome:
            problems.append(f"empty case or outcome: {row}")
        named = _TEST_ID.findall(tests)
        if not named:
            problems.append(f"no test named for {case!r}")
        for path, function, _ in named:
            if not (TESTS / path).is_file() or function not in _test_functions(TESTS / path):
                problems.append(f"{case!r}: tests/{path}::{function} does not exist")
    assert not problems, "\n".join(problems)


def test_every_category_has_rows():
    assert {row[0].lower() for row in _rows()} >= CATEGORIES


def test_the_tests_marked_hostile_are_the_tests_named_here():
    marked = {(path.relative_to(TESTS).as_posix(), function)
              for path in TESTS.rglob("test_*.py")
              for function, hostile in _test_functions(path).items() if hostile}
    named = _named()
    assert not marked - named, (
        "marked @pytest.mark.hostile but missing from tests/HARDENING.md (add a row): "
        f"{sorted(marked - named)}")
    assert not named - marked, (
        "named in tests/HARDENING.md but not marked @pytest.mark.hostile: "
        f"{sorted(named - marked)}")
