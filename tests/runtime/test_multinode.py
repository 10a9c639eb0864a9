"""A Ray cluster of a head and two worker nodes on this machine, with S3 (moto's server over HTTP)
for data, checkpoints and the run: the 2-worker job runs one worker per node, reads its Parquet
from the bucket, checkpoints and publishes there, and the model loaded back from the bucket
scores the reported accuracy; a local, undeclared output is refused before anything starts."""

from __future__ import annotations

import io
import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from slimray.spec import parse_spec
from tests.ray_cluster_helpers import Cluster
from tests.s3_helpers import moto_server

pytestmark = pytest.mark.timeout(900)
RAY_TOKEN = "f00dfeed" * 8
REPO = Path(__file__).resolve().parents[2]


_DRIVER = """
import importlib, json, sys
from slimray.runtime.trainer import run_job
from slimray.spec import parse_spec
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
    print(json.dumps({"refused": str(err)}))
    sys.exit(0)
out = {"state": result.state, "error": result.error, "run_dir": str(result.run_dir),
       "restarts_from_steps": result.report["restarts_from_steps"],
       "prune_steps": [e["step"] for e in result.report["prune_events"]]}
if result.state == "succeeded" and str(result.run_dir).startswith("s3://"):
    # the exported model, loaded back from the bucket, on the job's own (seeded) validation split
    import tempfile, keras
    from slimray.runtime.data import load_job_data
    from slimray.runtime.modeling import evaluate
    from slimray.runtime.storage import RunStore
    with tempfile.NamedTemporaryFile(suffix=".keras") as f:
        f.write(RunStore.of(str(result.run_dir)).read_bytes("model.keras"))
        f.flush()
        model = keras.models.load_model(f.name, compile=False)
    data = load_job_data(spec.data, spec.train)
    out["bucket_model_accuracy"] = evaluate(model, data.x_val, data.y_val)
    out["reported_accuracy"] = result.report["exported_accuracy"]
    out["architecture"] = [[w.path, list(w.shape)] for w in model.weights]
if options.get("dashboard"):  # where the training workers ran
    from ray.util.state import list_actors
    workers = list_actors(address=options["dashboard"], filters=[("class_name", "=", "RayTrainWorker")],
                          detail=True)
    out["worker_nodes"] = sorted({w.node_id for w in workers})
print(json.dumps(out))
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
        last = None
        while (line := self.lines.get(timeout=30)) is not None:
            last = line
        return json.loads(last)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Three nodes and the bucket; the drivers run as subprocesses (Ray reads its auth mode
    once per process, so each driver starts with the cluster's token in its environment)."""
    import os

    from slimray.datasets import _mnist

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


@pytest.fixture(scope="module")
def uninterrupted(cluster):
    nodes, _ = cluster
    return _drive(
        nodes, _spec("s3://slimray/runs/multi"), dashboard=f"http://127.0.0.1:{nodes.dashboard_port}"
    )


def test_the_job_runs_one_worker_per_node_from_and_to_the_bucket(cluster, uninterrupted):
    _, s3 = cluster
    outcome = uninterrupted
    assert outcome["state"] == "succeeded", outcome["error"]
    assert len(outcome["worker_nodes"]) == 2  # STRICT_SPREAD: one worker per worker node
    assert outcome["bucket_model_accuracy"] == pytest.approx(outcome["reported_accuracy"], abs=1e-6)
    keys = s3.keys("slimray", "runs/multi/")
    assert {"runs/multi/report.json", "runs/multi/model.keras"} <= set(keys)
    assert any(k.startswith("runs/multi/checkpoints/") for k in keys)
    report = json.loads(s3.client().get_object(Bucket="slimray", Key="runs/multi/report.json")["Body"].read())
    assert report["state"] == "succeeded" and report["workers"] == 2


def test_a_lost_worker_node_resumes_from_the_bucket_checkpoint(cluster, uninterrupted):
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
    assert outcome["architecture"] == uninterrupted["architecture"]
