"""Every SLIMRAY_* environment variable is declared once: a Settings field (SLIMRAY_<FIELD>) or a
name in slimray.core.envvars; the driver's environment round-trips through DriverEnv."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from slimray.core.envvars import DriverEnv

PACKAGE = Path(__file__).resolve().parents[2] / "service" / "slimray"
NAME = re.compile(r"^SLIMRAY_[A-Z0-9_]+$")
HOMES = {PACKAGE / "core" / "envvars.py", PACKAGE / "service" / "settings.py"}


def test_no_slimray_variable_is_named_outside_envvars_and_settings():
    strays = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path in HOMES:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and NAME.match(node.value):
                strays.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.value}")
    assert strays == []


def test_the_drivers_environment_round_trips():
    driver = DriverEnv("abc123", {"name": "job", "train": {"steps": 3}}, "http://svc:8000", "tok")
    assert DriverEnv.from_env(driver.to_env()) == driver
    assert DriverEnv.EVENT_CLAIM not in DriverEnv("a", {}, "http://s").to_env()
