"""Warm workers: the runtime-env strings a job's actors are given (an idle process fits only if
its string is byte-equal), and how many of each; the keeper is tested on a real session
(tests/e2e/test_warm_session.py)."""

from __future__ import annotations

import json

import pytest
from ray.train.v2._internal.constants import ENABLE_PREEMPTION_WATCHER_ENV_VAR

from slimray.runtime.cluster import JOB_ENV_VARS, controller_env
from slimray.runtime.preload import warm_system_config
from slimray.runtime.warm import DATASET_ACTORS, TRAIN_SIDE_ACTORS, job_envs
from tests.runtime.test_cluster import SPEC


def test_the_train_env_is_ray_trains_propagated_settings_merged_compact_and_sorted(monkeypatch):
    monkeypatch.delenv(ENABLE_PREEMPTION_WATCHER_ENV_VAR, raising=False)
    with controller_env(SPEC, embedded=True):
        train, driver = job_envs(dict(JOB_ENV_VARS), workers=2, uses_dataset=True)
    assert driver.serialized == '{"env_vars": {"TF_CPP_MIN_LOG_LEVEL": "2"}}' and driver.count == 1
    env = json.loads(train.serialized)["env_vars"]
    assert env["RAY_TRAIN_WORKER_HEALTH_CHECK_TIMEOUT_S"] == str(SPEC.failure.collective_timeout_seconds)
    assert env[ENABLE_PREEMPTION_WATCHER_ENV_VAR] == "0" and env["TF_CPP_MIN_LOG_LEVEL"] == "2"
    assert env["RAY_WARN_BLOCKING_GET_INSIDE_ASYNC"] == "0"
    assert train.serialized == json.dumps({"env_vars": env}, sort_keys=True, separators=(",", ":"))
    assert " " not in train.serialized and list(env) == sorted(env)
    assert train.count == TRAIN_SIDE_ACTORS + DATASET_ACTORS + 2


@pytest.mark.parametrize(("watcher", "dataset", "extra"), [("0", False, 0), ("1", False, 1), ("1", True, 3)])
def test_the_count_follows_the_watcher_and_the_data_set(monkeypatch, watcher, dataset, extra):
    monkeypatch.setenv(ENABLE_PREEMPTION_WATCHER_ENV_VAR, watcher)
    train, _ = job_envs(dict(JOB_ENV_VARS), workers=3, uses_dataset=dataset)
    assert train.count == TRAIN_SIDE_ACTORS + 3 + extra


def test_a_job_s_own_timeouts_change_its_string():
    """Ray Train hands its settings to its actors by env: a job with other timeouts needs other
    processes (it runs cold, correct, on a warm session)."""
    failure = SPEC.failure.model_copy(update={"collective_timeout_seconds": 77})
    other = SPEC.model_copy(update={"failure": failure})
    with controller_env(SPEC):
        a = job_envs(dict(JOB_ENV_VARS), 2, True)[0]
    with controller_env(other):
        b = job_envs(dict(JOB_ENV_VARS), 2, True)[0]
    assert a.serialized != b.serialized and '"RAY_TRAIN_WORKER_HEALTH_CHECK_TIMEOUT_S":"77"' in b.serialized


def test_a_warm_cluster_preloads_the_framework():
    modules = warm_system_config()["preload_python_modules"]
    assert modules[:2] == ["tensorflow", "keras"] and "slimray.runtime.worker" in modules
