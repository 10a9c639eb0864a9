"""A submitted driver keeps the service's hand-over to itself: its job's processes get a runtime
env without the job id, spec or claim (the same for every job, so warm processes fit)."""

from __future__ import annotations

import json

from ray._private.runtime_env.constants import RAY_JOB_CONFIG_JSON_ENV_VAR

from slimray.core.envvars import QUIET_TF, RAY_JOB_CONFIG, DriverEnv
from slimray.runtime.submitted import keep_driver_env_in_the_driver


def test_the_name_is_rays():
    assert RAY_JOB_CONFIG == RAY_JOB_CONFIG_JSON_ENV_VAR


def test_the_hand_over_leaves_the_job_s_runtime_env_and_the_rest_stays():
    hand_over = DriverEnv("j1", {"name": "x"}, "http://svc", "claim-secret", resume=True).to_env()
    config = {"runtime_env": {"env_vars": {**hand_over, **QUIET_TF}, "pip": ["x"]}, "metadata": {"a": "b"}}
    environ = {RAY_JOB_CONFIG: json.dumps(config), **hand_over}
    keep_driver_env_in_the_driver(environ)
    kept = json.loads(environ[RAY_JOB_CONFIG])
    assert kept["runtime_env"] == {"env_vars": QUIET_TF, "pip": ["x"]} and kept["metadata"] == {"a": "b"}
    assert DriverEnv.from_env(environ).event_claim == "claim-secret"  # the driver still has it all
    assert "claim-secret" not in environ[RAY_JOB_CONFIG]


def test_no_job_config_or_no_hand_over_is_left_alone():
    environ: dict[str, str] = {}
    keep_driver_env_in_the_driver(environ)
    assert environ == {}
    raw = json.dumps({"runtime_env": {"env_vars": QUIET_TF}})
    environ = {RAY_JOB_CONFIG: raw}
    keep_driver_env_in_the_driver(environ)
    assert environ[RAY_JOB_CONFIG] == raw
