"""Import boundaries: the package is cheap to import, pruning never reaches Ray or HTTP code."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SERVICE = Path(__file__).resolve().parents[1] / "service" / "slimray"


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return {m.split(".")[0] for m in proc.stdout.split()}


def test_importing_slimray_loads_neither_tensorflow_nor_ray():
    loaded = _loaded_after("import slimray, slimray.registry, slimray.cli")
    assert not loaded & {"tensorflow", "ray", "keras", "fastapi"}


def test_pruning_imports_keras_but_not_ray_or_http():
    loaded = _loaded_after("import slimray.pruning")
    assert "keras" in loaded
    assert not loaded & {"ray", "fastapi", "starlette", "uvicorn", "httpx"}


def test_pruning_sources_import_only_keras_numpy_and_the_stdlib():
    allowed = {"keras", "numpy", "tensorflow", "slimray", "__future__"} | set(sys.stdlib_module_names)
    for path in (SERVICE / "pruning").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in allowed, f"{path.name} imports {name}"
