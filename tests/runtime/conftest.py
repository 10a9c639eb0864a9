"""Fixtures the runtime's Ray tests share."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def ray_local(tmp_path_factory):
    """Ray for the module; yields the marker file `KilledWorkerLoop` writes when it kills."""
    import ray

    from tests.runtime.faulty_loops import KILL_MARKER_ENV

    marker = tmp_path_factory.mktemp("kill") / "killed"
    env = {"TF_CPP_MIN_LOG_LEVEL": "2", KILL_MARKER_ENV: str(marker)}
    from slimray.runtime.embedded_ray import start_embedded_ray

    start_embedded_ray(num_cpus=4, include_dashboard=False, log_to_driver=False,
                       runtime_env={"env_vars": env})  # fmt: skip
    yield marker
    ray.shutdown()
