"""Job data through Ray Data: built-ins split by seed, Parquet and NPZ files read and reshaped."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from slimray.core.spec import DataSpec, TrainSpec
from slimray.runtime.data import load_job_data

TRAIN = TrainSpec(steps=1, validation_split=0.25, seed=3)


@pytest.fixture(scope="module", autouse=True)
def ray_local():
    import ray

    from slimray.runtime.embedded_ray import start_embedded_ray

    start_embedded_ray(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _arrays(n=40):
    rng = np.random.default_rng(0)
    return rng.random((n, 4, 4, 1)).astype("float32"), (np.arange(n) % 3).astype("int64")


def test_builtin_digits_are_split_and_shaped():
    data = load_job_data(DataSpec(source="digits"), TRAIN)
    assert data.input_shape == (8, 8, 1) and data.num_classes == 10
    assert data.n_train + len(data.x_val) == 1797 and len(data.x_val) == round(1797 * 0.25)
    assert data.train is None  # in memory: workers get slices through the object store
    x, y = data.arrays
    assert x.shape == (data.n_train, 8, 8, 1) and y.dtype == np.int32


def test_worker_shards_are_disjoint_equal_and_cover_the_rows():
    from slimray.runtime.data import worker_shard

    x, y = np.arange(10, dtype="float32")[:, None], np.arange(10, dtype="int32")
    shards = [worker_shard(x, y, rank, 3, rows=3) for rank in range(3)]
    assert all(len(sx) == len(sy) == 3 for sx, sy in shards)
    seen = np.concatenate([sy for _, sy in shards])
    assert len(set(seen.tolist())) == 9  # disjoint; row 9 is the remainder no rank gets
    assert np.array_equal(shards[1][0][:, 0], [1, 4, 7])


def test_parquet_with_flat_features_is_reshaped(tmp_path):
    x, y = _arrays()
    table = pa.table({"pixels": [row.ravel().tolist() for row in x], "label": y})
    pq.write_table(table, tmp_path / "train.parquet")
    spec = DataSpec(source=str(tmp_path / "train.parquet"), x_column="pixels", y_column="label",
                    shape=(4, 4, 1))  # fmt: skip
    data = load_job_data(spec, TRAIN)
    assert data.input_shape == (4, 4, 1) and data.num_classes == 3
    assert data.n_train == 30 and data.x_val.shape == (10, 4, 4, 1)
    batch = next(iter(data.train.iter_batches(batch_size=8, batch_format="numpy")))
    assert batch["x"].dtype == np.float32 and batch["y"].dtype == np.int32
    # every sample comes through intact, in train or validation
    seen = np.concatenate(
        [np.stack(list(data.train.to_pandas()["x"])).reshape(-1, 16), data.x_val.reshape(-1, 16)]
    )
    assert sorted(map(tuple, seen.round(6))) == sorted(map(tuple, x.reshape(-1, 16).round(6)))


def test_npz_files(tmp_path):
    x, y = _arrays()
    np.savez(tmp_path / "a.npz", images=x[:20], labels=y[:20])
    np.savez(tmp_path / "b.npz", images=x[20:], labels=y[20:])
    spec = DataSpec(source=str(tmp_path), format="npz", x_column="images", y_column="labels")
    data = load_job_data(spec, TRAIN)
    assert data.n_train + len(data.x_val) == 40 and data.input_shape == (4, 4, 1)


def test_npz_without_the_named_arrays_is_a_clear_error(tmp_path):
    x, y = _arrays()
    np.savez(tmp_path / "a.npz", x=x, y=y)
    spec = DataSpec(source=str(tmp_path / "a.npz"), x_column="images", y_column="labels")
    with pytest.raises(Exception, match="lacks arrays"):
        load_job_data(spec, TRAIN)
