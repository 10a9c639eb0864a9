"""A job whose data and run directory are on S3 (a real S3 API: moto's server over HTTP): Ray Data
reads the Parquet from the bucket, Ray Train checkpoints into it, the driver publishes the model,
SavedModel and report there, and the model loaded back from the bucket scores what was reported."""

from __future__ import annotations

import io
import json
import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from slimray.spec import parse_spec
from tests.s3_helpers import moto_server

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    from slimray.datasets import _mnist

    with moto_server(tmp_path_factory.mktemp("moto")) as s3:
        s3.client().create_bucket(Bucket="slimray")
        x, y = _mnist()
        table = pa.table({"x": [row.ravel().tolist() for row in x[:2000]], "y": y[:2000].tolist()})
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        s3.client().put_object(Bucket="slimray", Key="data/train.parquet", Body=buffer.getvalue())
        yield s3


def _spec(output: str):
    return parse_spec({
        "name": "s3job",
        "model": {"source": "seed_cnn", "kwargs": {"conv1": 8, "conv2": 16, "fc": 32}},
        "data": {"source": "s3://slimray/data/train.parquet", "shape": [28, 28, 1]},
        "train": {"steps": 40, "batch_size": 32, "report_every": 10, "checkpoint_every": 20, "seed": 3},
        "prune": {"criterion": "l1", "sparsity": 0.5, "schedule": {"kind": "one_shot", "step": 15}},
        "scaling": {"num_workers": 2},
        "output": {"dir": output},
    })  # fmt: skip


def test_a_job_reads_from_and_writes_to_the_bucket(s3):
    import keras
    import ray

    from slimray.runtime.data import load_job_data
    from slimray.runtime.modeling import evaluate
    from slimray.runtime.trainer import run_job

    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {**s3.env, "TF_CPP_MIN_LOG_LEVEL": "2"}})  # fmt: skip
    try:
        spec = _spec("s3://slimray/runs/x")
        result = run_job(spec)
        assert result.state == "succeeded", result.error
        assert result.run_dir == "s3://slimray/runs/x"
        keys = s3.keys("slimray", "runs/x/")
        for expected in ("runs/x/report.json", "runs/x/model.keras", "runs/x/report.png"):
            assert expected in keys, keys
        assert any(k.startswith("runs/x/saved_model/") for k in keys)
        assert any(k.startswith("runs/x/checkpoints/") for k in keys), keys
        report = json.loads(s3.client().get_object(Bucket="slimray", Key="runs/x/report.json")["Body"].read())
        assert report["state"] == "succeeded" and len(report["prune_events"]) == 1
        body = s3.client().get_object(Bucket="slimray", Key="runs/x/model.keras")["Body"].read()
        with tempfile.NamedTemporaryFile(suffix=".keras") as f:
            f.write(body)
            f.flush()
            model = keras.models.load_model(f.name, compile=False)
        data = load_job_data(spec.data, spec.train)  # the same seeded split as the job's
        accuracy = evaluate(model, data.x_val, data.y_val)
        assert accuracy == pytest.approx(report["exported_accuracy"], abs=1e-6)
        assert np.isfinite(accuracy)
    finally:
        ray.shutdown()
