"""tests/HARDENING.md lists every hostile or careless input and the test that feeds it: each test
named there must exist, so the table cannot promise a test that was renamed or removed."""

from __future__ import annotations

import ast
import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
TABLE = TESTS / "HARDENING.md"
CATEGORIES = {
    "unbounded resources", "silent corruption", "links and locations", "mismatched artifacts",
    "outputs that lie or break", "one rule for every failure",
}
# `tests/test_x.py::test_name` or `tests/test_x.py::test_name[param]`
_TEST_ID = re.compile(r"`tests/(test_[\w]+\.py)::(test_\w+)(\[[^\]`]*\])?`")


def _rows() -> list[list[str]]:
    rows = []
    for line in TABLE.read_text(encoding="utf-8").splitlines():
        if line.startswith("|") and not set(line) <= set("|- :"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows[1:]  # the header


def _test_functions(file_name: str) -> set[str]:
    tree = ast.parse((TESTS / file_name).read_text(encoding="utf-8"))
    return {node.name for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


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
        for file_name, function, _ in named:
            if not (TESTS / file_name).is_file() or function not in _test_functions(file_name):
                problems.append(f"{case!r}: tests/{file_name}::{function} does not exist")
    assert not problems, "\n".join(problems)


def test_every_category_has_rows():
    assert {row[0].lower() for row in _rows()} >= CATEGORIES
