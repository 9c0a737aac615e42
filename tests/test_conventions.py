"""House rules a linter does not check: no function over 80 lines (CONTRIBUTING.md)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("textclf", "components", "pipelines", "serving", "security", "bench", "tests")
MAX_FUNCTION_LINES = 80


def function_lengths():
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    yield f"{path.relative_to(ROOT)}:{node.lineno} {node.name}", node.end_lineno - node.lineno + 1


def test_no_function_is_over_80_lines():
    long = {where: lines for where, lines in function_lengths() if lines > MAX_FUNCTION_LINES}
    assert not long, f"split these functions (lines from def to the end, docstring included): {long}"


def test_the_check_sees_every_function():
    lengths = dict(function_lengths())
    assert len(lengths) > 1000 and any(where.endswith(" function_lengths") for where in lengths)
