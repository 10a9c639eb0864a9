"""A Ray cluster of a head and two worker nodes on this machine, with S3 (moto's server) for data,
checkpoints and the run: the 2-worker job runs one worker per node from and to the bucket; a
local, undeclared output is refused before anything starts."""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from slimray.spec import parse_spec
from tests.ray_cluster_helpers import Cluster, wait_for_nodes
from tests.s3_helpers import moto_server

pytestmark = pytest.mark.timeout(900)
RAY_TOKEN = "f00dfeed" * 8


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    import os

    import ray

    from slimray.datasets import _mnist

    with moto_server(tmp_path_factory.mktemp("moto")) as s3:
        s3.client().create_bucket(Bucket="slimray")
        x, y = _mnist()
        table = pa.table({"x": [row.ravel().tolist() for row in x[:2000]], "y": y[:2000].tolist()})
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        s3.client().put_object(Bucket="slimray", Key="data/train.parquet", Body=buffer.getvalue())
        auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": RAY_TOKEN}
        env = {**os.environ, **auth, "TF_CPP_MIN_LOG_LEVEL": "2"}
        env.pop("RAY_ADDRESS", None)
        nodes = Cluster(env)
        saved = {k: os.environ.get(k) for k in auth}
        os.environ.update(auth)
        try:
            nodes.start_head()
            nodes.start_worker("node_a", 2)
            nodes.start_worker("node_b", 2)
            ray.init(address=nodes.address, log_to_driver=False,
                     runtime_env={"env_vars": {**s3.env, "TF_CPP_MIN_LOG_LEVEL": "2"}})  # fmt: skip
            wait_for_nodes(3)
            yield nodes, s3
        finally:
            ray.shutdown()
            nodes.stop()
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def _spec(output: str, **output_options):
    return parse_spec({
        "name": "multinode",
        "model": {"source": "seed_cnn", "kwargs": {"conv1": 8, "conv2": 16, "fc": 32}},
        "data": {"source": "s3://slimray/data/train.parquet", "shape": [28, 28, 1]},
        "train": {"steps": 40, "batch_size": 32, "report_every": 10, "checkpoint_every": 20, "seed": 3},
        "prune": {"criterion": "l1", "sparsity": 0.5, "schedule": {"kind": "one_shot", "step": 15}},
        "scaling": {"num_workers": 2, "placement_strategy": "STRICT_SPREAD"},
        "output": {"dir": output, **output_options},
    })  # fmt: skip


def test_a_local_undeclared_output_is_refused_before_anything_starts(cluster, tmp_path):
    from slimray.runtime.trainer import run_job

    with pytest.raises(ValueError, match=r"output.shared: true") as err:
        run_job(_spec(str(tmp_path / "local")))
    assert "3 nodes" in str(err.value) and not (tmp_path / "local").exists()


def test_the_job_runs_one_worker_per_node_from_and_to_the_bucket(cluster):
    from ray.util.state import list_actors

    from slimray.runtime.trainer import run_job

    nodes, s3 = cluster
    result = run_job(_spec("s3://slimray/runs/multi"))
    assert result.state == "succeeded", result.error
    keys = s3.keys("slimray", "runs/multi/")
    assert {"runs/multi/report.json", "runs/multi/model.keras"} <= set(keys)
    assert any(k.startswith("runs/multi/checkpoints/") for k in keys)
    report = json.loads(s3.client().get_object(Bucket="slimray", Key="runs/multi/report.json")["Body"].read())
    assert report["state"] == "succeeded" and report["workers"] == 2
    dashboard = f"http://127.0.0.1:{nodes.dashboard_port}"
    workers = list_actors(address=dashboard, filters=[("class_name", "=", "RayTrainWorker")], detail=True)
    assert len({w.node_id for w in workers}) == 2, [(w.node_id, w.state) for w in workers]
