"""docs/claims.md names, for each promise of the docs, the tests that keep it: they must exist."""

import ast
import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
CLAIMS = TESTS.parents[1] / "docs" / "claims.md"
NAMED = re.compile(r"`(test_\w+\.py)::(test_\w+)`")


def functions_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}


def test_every_promise_names_a_test_and_every_named_test_exists():
    rows = [line for line in CLAIMS.read_text().splitlines() if line.startswith("| ") and "::" in line]
    assert len(rows) >= 15
    missing = []
    for row in rows:
        named = NAMED.findall(row)
        assert named, row
        for file, name in named:
            if not (TESTS / file).is_file() or name not in functions_in(TESTS / file):
                missing.append(f"{file}::{name}")
    assert not missing, f"docs/claims.md names tests that do not exist: {missing}"
