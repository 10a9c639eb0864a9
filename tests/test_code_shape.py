"""The code's shape: no function over 40 lines, no module over 400, and no function-local import
unless a comment on its line or the line above says why it must stay lazy."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "service" / "slimray"
MAX_FUNCTION, MAX_MODULE = 40, 400


def _sources() -> list[tuple[Path, str]]:
    return [(path, path.read_text()) for path in sorted(PACKAGE.rglob("*.py"))]


def _functions(tree: ast.AST):
    return [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]


def test_no_function_is_over_40_lines():
    long = []
    for path, text in _sources():
        for fn in _functions(ast.parse(text)):
            length = fn.end_lineno - fn.lineno + 1
            if length > MAX_FUNCTION:
                long.append(f"{path.relative_to(PACKAGE)}:{fn.lineno} {fn.name} ({length} lines)")
    assert long == []


def test_no_module_is_over_400_lines():
    long = [
        f"{path.relative_to(PACKAGE)} ({n} lines)"
        for path, text in _sources()
        if (n := len(text.splitlines())) > MAX_MODULE
    ]
    assert long == []


def _explained(lines: list[str], lineno: int) -> bool:
    return "#" in lines[lineno - 1] or lines[lineno - 2].strip().startswith("#")


def test_every_function_local_import_says_why_it_is_lazy():
    unexplained = []
    for path, text in _sources():
        lines = text.splitlines()
        for fn in _functions(ast.parse(text)):
            for node in ast.walk(fn):
                if isinstance(node, ast.Import | ast.ImportFrom) and not _explained(lines, node.lineno):
                    unexplained.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert sorted(set(unexplained)) == []
