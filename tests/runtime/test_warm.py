"""Warm workers: the runtime-env strings a job's actors are given (an idle process fits only if
its string is byte-equal), and how many of each; the keeper is tested on a real session
(tests/e2e/test_warm_session.py)."""

from __future__ import annotations

import json

import pytest
from ray.train.v2._internal.constants import ENABLE_PREEMPTION_WATCHER_ENV_VAR

from slimray.runtime.cluster import JOB_ENV_VARS, controller_env
from slimray.runtime.preload import warm_system_config
from slimray.runtime.warm import DATASET_ACTORS, TRAIN_SIDE_ACTORS, JobProcesses, WarmEnv, job_processes
from tests.runtime.test_cluster import SPEC


def test_the_train_env_is_ray_trains_propagated_settings_merged_compact_and_sorted(monkeypatch):
    monkeypatch.delenv(ENABLE_PREEMPTION_WATCHER_ENV_VAR, raising=False)
    with controller_env(SPEC, embedded=True):
        job = job_processes(dict(JOB_ENV_VARS), workers=2, uses_dataset=True)
    assert job.driver_env == '{"env_vars": {"TF_CPP_MIN_LOG_LEVEL": "2"}}'
    env = json.loads(job.train_env)["env_vars"]
    assert env["RAY_TRAIN_WORKER_HEALTH_CHECK_TIMEOUT_S"] == str(SPEC.failure.collective_timeout_seconds)
    assert env[ENABLE_PREEMPTION_WATCHER_ENV_VAR] == "0" and env["TF_CPP_MIN_LOG_LEVEL"] == "2"
    assert env["RAY_WARN_BLOCKING_GET_INSIDE_ASYNC"] == "0"
    assert job.train_env == json.dumps({"env_vars": env}, sort_keys=True, separators=(",", ":"))
    assert " " not in job.train_env and list(env) == sorted(env)
    assert (job.side, job.workers) == (TRAIN_SIDE_ACTORS + DATASET_ACTORS, 2)


@pytest.mark.parametrize(("watcher", "dataset", "extra"), [("0", False, 0), ("1", False, 1), ("1", True, 3)])
def test_the_count_follows_the_watcher_and_the_data_set(monkeypatch, watcher, dataset, extra):
    monkeypatch.setenv(ENABLE_PREEMPTION_WATCHER_ENV_VAR, watcher)
    job = job_processes(dict(JOB_ENV_VARS), workers=3, uses_dataset=dataset)
    assert (job.side, job.workers) == (TRAIN_SIDE_ACTORS + extra, 3)


def test_a_job_s_own_timeouts_change_its_string():
    """Ray Train hands its settings to its actors by env: a job with other timeouts needs other
    processes (it runs cold, correct, on a warm session)."""
    failure = SPEC.failure.model_copy(update={"collective_timeout_seconds": 77})
    other = SPEC.model_copy(update={"failure": failure})
    with controller_env(SPEC):
        a = job_processes(dict(JOB_ENV_VARS), 2, True).train_env
    with controller_env(other):
        b = job_processes(dict(JOB_ENV_VARS), 2, True).train_env
    assert a != b and '"RAY_TRAIN_WORKER_HEALTH_CHECK_TIMEOUT_S":"77"' in b


def test_a_warm_cluster_preloads_the_framework():
    modules = warm_system_config()["preload_python_modules"]
    assert modules[:2] == ["tensorflow", "keras"] and "slimray.runtime.worker" in modules


JOB = JobProcesses(train_env="T", driver_env="D", side=4, workers=5)


def test_one_node_takes_the_whole_job():
    """A local session: the driver's node has the CPUs, side and worker processes share the env."""
    assert JOB.on_nodes("n", {"n": 8}) == {"n": (WarmEnv("T", 9), WarmEnv("D", 1))}


def test_on_a_cluster_the_side_goes_with_the_driver_and_the_workers_fill_the_largest_nodes():
    """The chart's cluster: a head without CPUs runs drivers and Ray Train's side actors; workers
    pack onto the nodes with CPUs, the largest first (a CPU each), and none beyond the job's."""
    placed = JOB.on_nodes("head", {"small": 2, "big": 4, "spare": 4})
    assert placed == {"head": (WarmEnv("T", 4), WarmEnv("D", 1)), "big": (WarmEnv("T", 4),),
                      "spare": (WarmEnv("T", 1),)}  # fmt: skip


def test_a_cluster_without_cpu_nodes_yet_gets_the_side_processes_only():
    assert JOB.on_nodes("head", {}) == {"head": (WarmEnv("T", 4), WarmEnv("D", 1))}


def test_a_worker_of_two_cpus_takes_two():
    job = JobProcesses(train_env="T", driver_env="D", side=4, workers=3, cpus_per_worker=2)
    assert job.on_nodes("head", {"a": 4, "b": 3})["a"] == (WarmEnv("T", 2),)
    assert job.on_nodes("head", {"a": 4, "b": 3})["b"] == (WarmEnv("T", 1),)
