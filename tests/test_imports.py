"""Import boundaries: the package is cheap to import, pruning never reaches Ray or HTTP code."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SERVICE = Path(__file__).resolve().parents[1] / "service" / "slimray"


def _loaded_modules(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return set(proc.stdout.split())


def _loaded_after(statement: str) -> set[str]:
    return {m.split(".")[0] for m in _loaded_modules(statement)}


def test_importing_slimray_loads_neither_tensorflow_nor_ray():
    loaded = _loaded_after("import slimray, slimray.core.registry, slimray.cli")
    assert not loaded & {"tensorflow", "ray", "keras", "fastapi"}


def test_pruning_imports_keras_but_not_ray_or_http():
    loaded = _loaded_after("import slimray.pruning")
    assert "keras" in loaded
    assert not loaded & {"ray", "fastapi", "starlette", "uvicorn", "httpx"}


# What each package's sources may import (beyond the stdlib): the package map's boundaries.
ALLOWED = {
    "core": {"pydantic", "yaml", "pyarrow", "slimray.core"},
    "zoo": {"keras", "numpy", "sklearn", "mlxtend", "slimray.core", "slimray.zoo"},
    "pruning": {"keras", "numpy", "tensorflow", "slimray.core", "slimray.pruning"},
    "service": {
        "fastapi",
        "starlette",
        "httpx",
        "prometheus_client",
        "psutil",  # a declared dependency: stopping a local head ends its processes outside its group
        "pydantic",
        "pydantic_settings",
        "uvicorn",
        "yaml",
        "slimray",
        "slimray.core",
        "slimray.service",
    },
}


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append(node.module or "")
    return [n for n in names if n.split(".")[0] not in sys.stdlib_module_names | {"__future__"}]


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_package_imports_only_what_the_map_allows(package):
    allowed = ALLOWED[package]
    strays = []
    for path in sorted((SERVICE / package).rglob("*.py")):
        for name in _imports(path):
            parts = name.split(".")
            key = ".".join(parts[:2]) if parts[0] == "slimray" and len(parts) > 1 else parts[0]
            if key not in allowed:
                strays.append(f"{path.relative_to(SERVICE)} imports {name}")
    assert strays == []


def test_the_service_never_loads_the_runtime_tensorflow_or_ray():
    loaded = _loaded_after("import slimray.service.api.main, slimray.service.executor")
    assert not loaded & {"tensorflow", "keras", "ray"}
    modules = _loaded_modules("import slimray.service.api.main, slimray.service.executor")
    assert not {m for m in modules if m.startswith(("slimray.runtime", "slimray.pruning", "slimray.zoo"))}
