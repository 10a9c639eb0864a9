"""The warm path on a cluster: a head without CPUs (drivers and Ray Train's side actors) and a
worker node, their raylets told to preload TensorFlow by the variable the chart sets. The warm
job (`python -m slimray.runtime.warm`, what the service submits) places a job's processes: the
side ones on the head, one per worker on the worker node, each importing TensorFlow; a job then
starts on them warm, and its driver has the keeper refill both nodes for the next."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from slimray.runtime.preload import PRELOADED
from slimray.service.executor import RayJobExecutor
from tests.ray_cluster_helpers import Cluster
from tests.service_helpers import wait_for

pytestmark = pytest.mark.timeout(900)
RAY_TOKEN = "5eed" * 16
REPO = Path(__file__).resolve().parents[2]
CHART_HELPERS = REPO / "charts" / "slimray" / "templates" / "_helpers.tpl"
JOB = {
    "name": "warm-cluster",
    "model": {"source": "seed_cnn", "kwargs": {"conv1": 8, "conv2": 16, "fc": 32}},
    "data": {"source": "mnist"},
    "train": {"steps": 12, "batch_size": 32, "report_every": 4, "seed": 5},
    "scaling": {"num_workers": 2},
}

_IDLE = """
import dataclasses, json, sys, ray
from slimray.runtime.warm import KEEPER_NAMESPACE, NODE_KEEPER_PREFIX, find_keeper
ray.init(address=sys.argv[1], log_to_driver=False)
keeper = find_keeper()
settled = dataclasses.asdict(ray.get(keeper.settled.remote()))
head = next(n["NodeID"] for n in ray.nodes() if n["Alive"] and not n["Resources"].get("CPU"))
idle = {"head" if node == head else "worker": n for node, n in ray.get(keeper.idle_by_node.remote()).items()}
worker = next(n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU"))
node_keeper = ray.get_actor(NODE_KEEPER_PREFIX + worker, namespace=KEEPER_NAMESPACE)
print(json.dumps({**idle, "worker_pids": ray.get(node_keeper.idle_pids.remote()), "settled": settled}))
"""

_DRIVER = """
import json, sys
from slimray.core.spec import parse_spec
from slimray.runtime.trainer import run_job
seen = {}
def on_event(kind, data):
    if kind == "startup":
        seen.update(data)
result = run_job(parse_spec(json.loads(sys.argv[2])), address=sys.argv[1], on_event=on_event)
print(json.dumps({"state": result.state, "error": result.error, "warm": seen.get("warm")}))
"""


def _chart_preload() -> str:
    lines = CHART_HELPERS.read_text().splitlines()
    line = next(line for line in lines if "RAY_preload_python_modules" in line)
    return line.split('value: "')[1].split('"')[0]


@pytest.fixture(scope="module")
def cluster():
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": RAY_TOKEN, "TF_CPP_MIN_LOG_LEVEL": "2",
           "RAY_preload_python_modules": _chart_preload()}  # fmt: skip
    env.pop("RAY_ADDRESS", None)
    nodes = Cluster(env)
    try:
        nodes.start_head()
        nodes.start_worker("node_a", 2)
        wait_for(lambda: _executor(nodes).reachable() and _executor(nodes).alive_nodes() == 2, 300, "2 nodes")
        yield nodes
    finally:
        nodes.stop()


def _python(nodes: Cluster, *args: str, timeout: float = 600) -> str:
    proc = subprocess.run([sys.executable, *args], env=nodes.env, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


def _executor(nodes: Cluster) -> RayJobExecutor:
    """The service's side of Ray's job API, for this cluster."""
    return RayJobExecutor(_dashboard(nodes), sys.executable, "http://127.0.0.1:9", RAY_TOKEN, timeout=30)


def _dashboard(nodes: Cluster) -> str:
    return f"http://127.0.0.1:{nodes.dashboard_port}"


def _ray_job(nodes: Cluster, submission_id: str, timeout: float = 600) -> str:
    """Wait for a Ray job (its driver on the head, as every job the service submits); its log's last line."""
    auth = {"Authorization": f"Bearer {RAY_TOKEN}"}
    deadline = time.time() + timeout
    while (state := httpx.get(f"{_dashboard(nodes)}/api/jobs/{submission_id}", headers=auth, timeout=30)
           .json()["status"]) not in ("SUCCEEDED", "FAILED", "STOPPED"):  # fmt: skip
        assert time.time() < deadline, f"job {submission_id} still {state}"
        time.sleep(1)
    logs = httpx.get(f"{_dashboard(nodes)}/api/jobs/{submission_id}/logs", headers=auth, timeout=30).json()[
        "logs"
    ]
    assert state == "SUCCEEDED", logs[-3000:]
    return logs.strip().splitlines()[-1]


def _submit(nodes: Cluster, script: Path, *args: str) -> str:
    entrypoint = shlex.join([sys.executable, str(script), *args])
    body = {"entrypoint": entrypoint, "submission_id": f"test-{time.time_ns()}"}
    response = httpx.post(f"{_dashboard(nodes)}/api/jobs/", json=body, timeout=30,
                          headers={"Authorization": f"Bearer {RAY_TOKEN}"})  # fmt: skip
    assert response.status_code == 200, response.text
    return _ray_job(nodes, body["submission_id"])


def _idle(nodes: Cluster) -> dict:
    return json.loads(_python(nodes, "-c", _IDLE, nodes.address))


def _tensorflow_in(pid: int) -> bool:
    try:
        return any("libtensorflow" in m.path for m in psutil.Process(pid).memory_maps())
    except psutil.Error:
        return False


def test_the_chart_preloads_what_a_warm_local_session_preloads():
    assert _chart_preload().split(",") == list(PRELOADED)


def test_the_warm_job_places_a_jobs_processes_and_a_job_starts_on_them_warm(cluster, tmp_path):
    executor = _executor(cluster)
    said = _ray_job(cluster, executor.keep_warm())  # as the service submits it
    assert said.endswith("for jobs of 2 workers"), said  # sized to the cluster's CPUs
    idle = _idle(cluster)
    # the head: Ray Train's 3 side actors, Ray Data's 2, the preemption watcher, the progress channel
    workers, first = idle.pop("worker_pids"), idle.pop("settled")
    assert idle == {"head": 7, "worker": 2}, idle
    assert len(workers) == 2 and all(_tensorflow_in(pid) for pid in workers), workers
    spec = {**JOB, "output": {"dir": str(tmp_path / "run"), "shared": True}}  # one machine
    driver = tmp_path / "driver.py"
    driver.write_text(_DRIVER)
    outcome = json.loads(_submit(cluster, driver, cluster.address, json.dumps(spec)))
    assert outcome["state"] == "succeeded" and outcome["warm"] is True, outcome
    # the job's workers took the worker node's processes; its driver had the keeper start new ones
    refilled = _idle(cluster)
    assert refilled["settled"]["refills"] == 2 and refilled["worker"] == 2, refilled
    assert not set(refilled["worker_pids"]) & set(workers), (workers, refilled)
    assert all(_tensorflow_in(pid) for pid in refilled["worker_pids"]), refilled
    # the head's keeper started processes again: this job's side set (no Ray Data set: Train's 3,
    # the watcher, the channel), less what is idle of its own still
    assert refilled["settled"]["started"] > first["started"] and refilled["head"] >= 5, refilled
