"""Job data read from a real S3 API (moto's server) through Ray Data: NPZ files and Parquet
under an s3:// prefix give the same rows as the local files they were uploaded from."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from slimray.core.spec import DataSpec, TrainSpec
from slimray.runtime.data import load_job_data
from tests.s3_helpers import moto_server

TRAIN = TrainSpec(steps=1, validation_split=0.25, seed=3)


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """The bucket, then a local Ray whose workers (Ray Data's read tasks) get its endpoint."""
    import ray

    with moto_server(tmp_path_factory.mktemp("moto")) as s3:
        s3.client().create_bucket(Bucket="data")
        from slimray.runtime.embedded_ray import start_embedded_ray

        start_embedded_ray(num_cpus=2, include_dashboard=False, log_to_driver=False,
                           runtime_env={"env_vars": s3.env})  # fmt: skip
        try:
            yield s3
        finally:
            ray.shutdown()


def _arrays(n=40):
    rng = np.random.default_rng(0)
    return rng.random((n, 4, 4, 1)).astype("float32"), (np.arange(n) % 3).astype("int64")


def _put(s3, key: str, body: bytes) -> None:
    s3.client().put_object(Bucket="data", Key=key, Body=body)


def test_npz_files_under_an_s3_prefix(s3):
    x, y = _arrays()
    for name, rows in (("a", slice(0, 20)), ("b", slice(20, 40))):
        buffer = io.BytesIO()
        np.savez(buffer, images=x[rows], labels=y[rows])
        _put(s3, f"npz/{name}.npz", buffer.getvalue())
    spec = DataSpec(source="s3://data/npz/", format="npz", x_column="images", y_column="labels")
    data = load_job_data(spec, TRAIN)
    assert data.n_train + len(data.x_val) == 40 and data.input_shape == (4, 4, 1)
    assert data.num_classes == 3
    # every validation row is one of the uploaded rows, unchanged
    uploaded = {row.tobytes() for row in x}
    assert all(row.tobytes() in uploaded for row in data.x_val)


def test_parquet_from_s3_is_reshaped(s3):
    x, y = _arrays()
    buffer = io.BytesIO()
    pq.write_table(pa.table({"x": [r.ravel().tolist() for r in x], "y": y.tolist()}), buffer)
    _put(s3, "flat/train.parquet", buffer.getvalue())
    data = load_job_data(DataSpec(source="s3://data/flat/train.parquet", shape=[4, 4, 1]), TRAIN)
    assert data.n_train + len(data.x_val) == 40 and data.input_shape == (4, 4, 1)
