"""A Ray cluster of a head and two worker nodes on this machine, with S3 (moto's server over HTTP)
for data, checkpoints and the run. Through the service (runs_root on the bucket) the 2-worker job
runs one worker per node, reads its Parquet from the bucket, checkpoints and publishes there, and
GET /v1/jobs/{id} shows the report; the model loaded back from the bucket scores the reported
accuracy. A worker node lost mid-run (raylet SIGKILLed) costs a resume from the bucket's
checkpoint, not the job. A local, undeclared output is refused before anything starts, by the
driver and (422) by the service."""

from __future__ import annotations

import io
import json
import queue
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from slimray.core.spec import parse_spec
from slimray.service.settings import get_settings
from tests.ray_cluster_helpers import Cluster
from tests.s3_helpers import moto_server
from tests.service_helpers import free_port, running_service

pytestmark = pytest.mark.timeout(900)
RAY_TOKEN = "f00dfeed" * 8
REPO = Path(__file__).resolve().parents[2]


_DRIVER = """
import importlib, json, sys
from slimray.runtime.trainer import run_job
from slimray.core.spec import parse_spec
spec, options = parse_spec(json.loads(sys.argv[2])), json.loads(sys.argv[3])
def on_event(kind, data):  # live progress for the test, one line each
    print("EVENT " + json.dumps({"kind": kind, "step": data.get("step"), "prune": bool(data.get("event"))}),
          flush=True)
loop = None
if options.get("loop"):
    module, _, name = options["loop"].partition(":")
    loop = getattr(importlib.import_module(module), name)
try:
    result = run_job(spec, address=sys.argv[1], on_event=on_event, loop=loop)
except ValueError as err:
    print("RESULT " + json.dumps({"refused": str(err)}))
    sys.exit(0)
print("RESULT " + json.dumps({"state": result.state, "error": result.error, "run_dir": str(result.run_dir),
                  "restarts_from_steps": result.report["restarts_from_steps"],
                  "prune_steps": [e["step"] for e in result.report["prune_events"]]}))
"""

# A run in the bucket, inspected from a process on the cluster: the exported model loaded back
# from the bucket, scored on the job's own (seeded) validation split, and its architecture.
_INSPECT = """
import json, sys, tempfile
import keras, ray
from slimray.runtime.data import load_job_data
from slimray.runtime.modeling import evaluate
from slimray.core.storage import RunStore
from slimray.core.spec import parse_spec
ray.init(address=sys.argv[1], log_to_driver=False)
spec = parse_spec(json.loads(sys.argv[2]))
with tempfile.NamedTemporaryFile(suffix=".keras") as f:
    f.write(RunStore.of(spec.output.dir).read_bytes("model.keras"))
    f.flush()
    model = keras.models.load_model(f.name, compile=False)
data = load_job_data(spec.data, spec.train)
print("RESULT " + json.dumps({"accuracy": evaluate(model, data.x_val, data.y_val),
                  "architecture": [[w.path, list(w.shape)] for w in model.weights]}))
"""


class Driver:
    """A job's driver as a subprocess; its progress lines are read as they come."""

    def __init__(self, nodes: Cluster, spec, **options):
        args = [sys.executable, "-c", _DRIVER, nodes.address, json.dumps(spec.model_dump(mode="json")),
                json.dumps(options)]  # fmt: skip
        self.proc = subprocess.Popen(args, env=nodes.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)  # fmt: skip
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put(None)

    def wait_for_event(self, accept, timeout: float = 600) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            line = self.lines.get(timeout=max(0.1, deadline - time.time()))
            assert line is not None, "the driver ended first: " + "".join(self.stderr)[-3000:]
            if line.startswith("EVENT ") and accept(event := json.loads(line[6:])):
                return event
        raise AssertionError("the event never came")

    def outcome(self, timeout: float = 800) -> dict:
        assert self.proc.wait(timeout) == 0, "".join(self.stderr)[-3000:]
        lines = []
        while (line := self.lines.get(timeout=30)) is not None:
            lines.append(line)
        return _result(lines)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Three nodes and the bucket; the drivers run as subprocesses (Ray reads its auth mode
    once per process, so each driver starts with the cluster's token in its environment)."""
    import os

    from slimray.zoo.datasets import _mnist

    with moto_server(tmp_path_factory.mktemp("moto")) as s3:
        s3.client().create_bucket(Bucket="slimray")
        x, y = _mnist()
        table = pa.table({"x": [row.ravel().tolist() for row in x[:2000]], "y": y[:2000].tolist()})
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        s3.client().put_object(Bucket="slimray", Key="data/train.parquet", Body=buffer.getvalue())
        env = {**os.environ, **s3.env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": RAY_TOKEN,
               "TF_CPP_MIN_LOG_LEVEL": "2"}  # fmt: skip
        env.pop("RAY_ADDRESS", None)
        # the nodes' workers import the test's fault-injecting loops from this checkout
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        nodes = Cluster(env)
        try:
            nodes.start_head()
            nodes.start_worker("node_a", 2)
            nodes.start_worker("node_b", 2)
            _wait_for_nodes(nodes, 3)
            yield nodes, s3
        finally:
            nodes.stop()


def _wait_for_nodes(nodes: Cluster, count: int) -> None:
    code = ("import ray, sys, time\nray.init(address=sys.argv[1], log_to_driver=False)\n"
            "deadline = time.time() + 120\n"
            "while sum(n['Alive'] for n in ray.nodes()) < int(sys.argv[2]) and time.time() < deadline:\n"
            "    time.sleep(1)\nprint(sum(n['Alive'] for n in ray.nodes()))\n")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code, nodes.address, str(count)], env=nodes.env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.strip().endswith(str(count)), proc.stderr[-2000:]


def _drive(nodes: Cluster, spec, **options) -> dict:
    return Driver(nodes, spec, **options).outcome()


def _spec(output: str, **output_options):
    return parse_spec({
        "name": "multinode",
        "model": {"source": "seed_cnn", "kwargs": {"conv1": 8, "conv2": 16, "fc": 32}},
        "data": {"source": "s3://slimray/data/train.parquet", "shape": [28, 28, 1]},
        "train": {"steps": 80, "batch_size": 32, "report_every": 10, "checkpoint_every": 20, "seed": 3},
        "prune": {"criterion": "l1", "sparsity": 0.5, "schedule": {"kind": "one_shot", "step": 15}},
        "scaling": {"num_workers": 2, "placement_strategy": "STRICT_SPREAD"},
        "output": {"dir": output, **output_options},
    })  # fmt: skip


def test_a_local_undeclared_output_is_refused_before_anything_starts(cluster, tmp_path):
    nodes, _ = cluster
    outcome = _drive(nodes, _spec(str(tmp_path / "local")))
    assert "output.shared: true" in outcome["refused"] and "3 nodes" in outcome["refused"]
    assert not (tmp_path / "local").exists()


def test_a_lost_worker_node_resumes_from_the_bucket_checkpoint(cluster, service_job):
    """node_b's raylet is SIGKILLed after the first prune event and a checkpoint in the bucket;
    the node comes back (as a pod would) and the job resumes from the bucket's checkpoint."""
    nodes, s3 = cluster
    driver = Driver(nodes, _spec("s3://slimray/runs/killed"), loop="tests.runtime.faulty_loops:PacedLoop")
    driver.wait_for_event(lambda e: e["kind"] == "report" and e["prune"])
    deadline = time.time() + 120
    while not s3.keys("slimray", "runs/killed/checkpoints/") and time.time() < deadline:
        time.sleep(0.5)
    assert s3.keys("slimray", "runs/killed/checkpoints/"), "no checkpoint reached the bucket"
    time.sleep(3)  # the controller registers a checkpoint when it polls its workers (every 2 s)
    nodes.kill_raylet("node_b")
    nodes.start_worker("node_b", 2)
    outcome = driver.outcome()
    assert outcome["state"] == "succeeded", outcome["error"]
    assert outcome["restarts_from_steps"], "the job did not restart from a checkpoint"
    assert min(outcome["restarts_from_steps"]) > 15  # after the prune event: the shrunk model resumed
    assert outcome["prune_steps"] == [15]  # pruned once, not again after the restart
    resumed = _inspect(nodes, _spec("s3://slimray/runs/killed"))
    assert resumed["architecture"] == service_job.inspected["architecture"]  # as if never interrupted


def _service(nodes: Cluster, tmp_path, runs_root: str):
    """The job service in this process, submitting to the cluster's job server."""
    port = free_port()
    settings = get_settings(
        api_token="admin", db_path=tmp_path / "jobs.db", runs_root=runs_root,
        ray_address=f"http://127.0.0.1:{nodes.dashboard_port}", ray_token=RAY_TOKEN,
        driver_python=sys.executable, service_url=f"http://127.0.0.1:{port}",
        allowed_uri_prefixes=["s3://slimray/data/"], reconcile_seconds=0.5,
        keep_warm=False,  # warm workers on a cluster: test_warm_cluster.py
    )  # fmt: skip
    return running_service(settings, port)


AUTH = {"Authorization": "Bearer admin"}


def _until(check, timeout: float, what: str, describe=lambda: ""):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if value := check():
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}: {describe()}")


def test_the_service_refuses_a_local_runs_root_on_the_cluster(cluster, tmp_path):
    nodes, _ = cluster
    with _service(nodes, tmp_path, str(tmp_path / "runs")) as url:
        _until(lambda: httpx.get(f"{url}/readyz", headers=AUTH, timeout=5).json()["ray_nodes"] == 3,
               60, "the node count")  # fmt: skip
        spec = _spec("ignored").model_dump(mode="json")
        response = httpx.post(f"{url}/v1/jobs", json=spec, headers=AUTH, timeout=30)
        assert response.status_code == 422, response.text
        [problem] = response.json()["detail"]
        assert problem["loc"] == ["body", "output", "dir"]
        assert "3 nodes" in problem["msg"] and "SLIMRAY_RUNS_ROOT" in problem["msg"]
        assert httpx.get(f"{url}/v1/jobs", headers=AUTH, timeout=5).json()["total"] == 0
    assert not (tmp_path / "runs").exists()


@dataclass
class ServiceJob:
    job: dict  # GET /v1/jobs/{id} once it ended
    s3_prefix: str  # its run directory in the bucket
    worker_nodes: set[str]  # where its training workers ran
    inspected: dict  # the bucket's model: accuracy and architecture (_INSPECT)


@pytest.fixture(scope="module")
def service_job(cluster, tmp_path_factory) -> ServiceJob:
    """The 2-worker job submitted to the service (runs_root on the bucket), run to its end:
    the uninterrupted reference of this module."""
    nodes, _ = cluster
    with _service(nodes, tmp_path_factory.mktemp("service"), "s3://slimray/service-runs") as url:
        created = httpx.post(f"{url}/v1/jobs", json=_spec("ignored").model_dump(mode="json"), headers=AUTH,
                             timeout=30)  # fmt: skip
        assert created.status_code == 201, created.text
        job_id = created.json()["id"]
        get = lambda: _json(httpx.get(f"{url}/v1/jobs/{job_id}", headers=AUTH, timeout=10))  # noqa: E731
        logs = lambda: httpx.get(f"{url}/v1/jobs/{job_id}/logs", headers=AUTH, timeout=10).text[-3000:]  # noqa: E731
        ended = lambda: (j := get())["state"] in ("succeeded", "failed", "cancelled") and j  # noqa: E731
        job = _until(ended, 600, "the job", lambda: f"{get()} {logs()}")
    assert job["state"] == "succeeded", job["error"]
    return ServiceJob(job, f"service-runs/{job_id}/", _worker_nodes(nodes, job["ray_job_id"]),
                      _inspect(nodes, parse_spec(job["spec"])))  # fmt: skip


def _worker_nodes(nodes: Cluster, ray_job_id: str) -> set[str]:
    """Nodes of the job's RayTrainWorker actors (Ray's state API, dead actors included)."""
    params = {"filter_keys": "class_name", "filter_predicates": "=", "filter_values": "RayTrainWorker",
              "detail": "true", "limit": 1000}  # fmt: skip
    response = httpx.get(f"http://127.0.0.1:{nodes.dashboard_port}/api/v0/actors", params=params,
                         headers={"Authorization": f"Bearer {RAY_TOKEN}"}, timeout=30)  # fmt: skip
    rows = _json(response)["data"]["result"]["result"]
    return {row["node_id"] for row in rows}


def _inspect(nodes: Cluster, spec) -> dict:
    args = [sys.executable, "-c", _INSPECT, nodes.address, json.dumps(spec.model_dump(mode="json"))]
    proc = subprocess.run(args, env=nodes.env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return _result(proc.stdout.splitlines())


def _result(lines: list[str]) -> dict:
    """A script's RESULT line (Ray may print its own lines to a driver's stdout, after it too)."""
    results = [line.strip()[len("RESULT ") :] for line in lines if line.strip().startswith("RESULT ")]
    assert results, "no RESULT line in: " + "\n".join(lines)[-3000:]
    return json.loads(results[-1])


def _json(response: httpx.Response) -> dict:
    """A response's JSON body, or a failure that shows the status and the body."""
    assert response.status_code == 200, f"{response.url}: {response.status_code} {response.text[:2000]}"
    return response.json()


def test_the_service_runs_the_job_one_worker_per_node_from_and_to_the_bucket(cluster, service_job):
    _, s3 = cluster
    job, prefix = service_job.job, service_job.s3_prefix
    assert job["spec"]["output"]["dir"] == f"s3://slimray/{prefix.rstrip('/')}"
    assert len(service_job.worker_nodes) == 2  # STRICT_SPREAD: one worker on each worker node
    keys = s3.keys("slimray", prefix)
    assert {f"{prefix}report.json", f"{prefix}model.keras"} <= set(keys)
    assert any(k.startswith(f"{prefix}checkpoints/") for k in keys)
    # GET /v1/jobs/{id} shows the report the driver published in the bucket (its per-window
    # timeline stays in the bucket's report.json)
    report = json.loads(s3.client().get_object(Bucket="slimray", Key=f"{prefix}report.json")["Body"].read())
    assert job["report"] == {k: v for k, v in report.items() if k != "timeline"}
    assert report["state"] == "succeeded" and report["workers"] == 2 and report["timeline"]
    assert report["params"]["after"] < report["params"]["before"]
    # the exported model, loaded back from the bucket, scores what the report says
    assert service_job.inspected["accuracy"] == pytest.approx(report["exported_accuracy"], abs=1e-6)
