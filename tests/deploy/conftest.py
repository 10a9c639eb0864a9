"""The deployment tests start pods from the rendered manifests as Docker containers: they need a
Docker daemon that answers and the image the manifests name. Locally a skip without them; a
failure under SLIMRAY_REQUIRE_TOOLS=1."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import REQUIRE_TOOLS
from tests.deploy.machine import DOCKER

IMAGE = "slimray:0.1.0"  # what the chart (appVersion) and k8s/*.yaml name


def _missing(message: str) -> None:
    if REQUIRE_TOOLS:
        pytest.fail(message + " (SLIMRAY_REQUIRE_TOOLS=1)")
    pytest.skip(message)


def need_docker_image(image: str = IMAGE) -> str:
    """The image, once the Docker daemon answers and holds it (build it with `make image`)."""
    if not Path(DOCKER).exists():
        _missing(f"the Docker client {DOCKER} is not installed")
    try:
        info = subprocess.run(
            [DOCKER, "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired:
        info = None
    if info is None or info.returncode != 0 or not info.stdout.strip():
        _missing(f"no Docker daemon answers: {info.stderr.strip() if info else 'timed out'}")
    found = subprocess.run(
        [DOCKER, "image", "inspect", "--format", "{{.Id}}", image], capture_output=True, text=True, timeout=30
    )
    if found.returncode != 0:
        _missing(f"the image {image} is not built (make image)")
    return image


@pytest.fixture(scope="session")
def image() -> str:
    return need_docker_image()
