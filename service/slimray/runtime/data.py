"""Job data as Ray Datasets: the training set is sharded across workers by Ray Train; the held-out
validation set is small and goes to every worker whole."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np

from slimray.core.spec import DataSpec, TrainSpec
from slimray.core.storage import check_readable, is_uri, store_error
from slimray.zoo.datasets import load_builtin, split, synthetic


@dataclass
class JobData:
    """Either `train` (a Ray Dataset, for files) or `arrays` (data already in driver memory)."""

    train: Any  # ray.data.Dataset with columns x (float32 tensor) and y (int32), or None
    x_val: np.ndarray
    y_val: np.ndarray
    n_train: int
    input_shape: tuple[int, ...]
    num_classes: int
    arrays: tuple[np.ndarray, np.ndarray] | None = None  # (x_train, y_train) of built-in sets


def worker_shard(x: np.ndarray, y: np.ndarray, rank: int, world: int, rows: int):
    """Rank `rank`'s equal share of in-memory training data: every world-th row, `rows` of them.

    Built-in data sets are already in memory: handing each worker its slice through the object
    store skips Ray Data's streaming split, whose start-up costs seconds per job.
    """
    return x[rank::world][:rows], y[rank::world][:rows]


def _npz_rows(row: dict[str, Any], spec: DataSpec) -> list[dict[str, Any]]:
    with np.load(io.BytesIO(row["bytes"])) as data:
        missing = {spec.x_column, spec.y_column} - set(data.files)
        if missing:
            raise ValueError(f"data.source: NPZ file lacks arrays {sorted(missing)}; has {data.files}")
        x, y = data[spec.x_column], data[spec.y_column]
    return [{"x": xi, "y": yi} for xi, yi in zip(x, y, strict=True)]


def _normalize(batch: dict[str, np.ndarray], spec: DataSpec) -> dict[str, np.ndarray]:
    x = np.stack([np.asarray(v, dtype=np.float32) for v in batch[spec.x_column]])
    if spec.shape:
        x = x.reshape(len(x), *spec.shape)
    return {"x": x, "y": np.asarray(batch[spec.y_column]).astype(np.int32)}


def _read_files(spec: DataSpec):
    """The files as a Ray Dataset of normalized x (float32) and y (int32) batches."""
    # lazy: the CLI imports the driver, hence this module, for commands that never start Ray
    import ray.data

    if spec.file_format == "parquet":
        ds = ray.data.read_parquet(spec.source, columns=[spec.x_column, spec.y_column])
        columns = spec
    else:
        ds = ray.data.read_binary_files(spec.source).flat_map(lambda row: _npz_rows(row, spec))
        columns = spec.model_copy(update={"x_column": "x", "y_column": "y"})  # _npz_rows' names
    return ds.map_batches(lambda b: _normalize(b, columns), batch_format="numpy")


def _store_failure(err: BaseException) -> OSError | None:
    """The OSError (network, credentials, missing object) behind a read error, if it is one:
    Ray Data wraps it in task errors whose `cause` or `__cause__` leads to it."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, OSError):
            return err
        seen.add(id(err))
        err = getattr(err, "cause", None) or err.__cause__ or err.__context__
    return None


def _read_store(spec: DataSpec):
    """The data set, read now; a store that fails is a StorageError naming the source URI."""
    if is_uri(spec.source):
        check_readable(spec.source, "data.source")
    try:
        return _read_files(spec).materialize()
    except Exception as err:
        cause = _store_failure(err) if is_uri(spec.source) else None
        if cause is None:
            raise
        raise store_error("data.source", spec.source, "reading", cause) from None


def load_job_data(spec: DataSpec, train: TrainSpec) -> JobData:
    """Read, split (seeded) and convert the job's data; validation comes back as numpy."""
    if spec.kind == "builtin":
        if spec.source == "synthetic":
            s = spec.synthetic
            x, y = synthetic(s.samples, s.shape, s.num_classes, seed=train.seed)
            parts = split(x, y, train.validation_split, train.seed)
        else:
            parts = load_builtin(spec.source, train.validation_split, train.seed)
        return JobData(
            train=None,
            arrays=(parts.x_train, parts.y_train),
            x_val=parts.x_val,
            y_val=parts.y_val,
            n_train=len(parts.x_train),
            input_shape=parts.input_shape,
            num_classes=parts.num_classes,
        )
    ds = _read_store(spec)
    if train.validation_split > 0:
        train_ds, val_ds = ds.train_test_split(train.validation_split, shuffle=True, seed=train.seed)
        rows = val_ds.take_all()
        x_val = np.stack([r["x"] for r in rows]).astype(np.float32)
        y_val = np.asarray([r["y"] for r in rows], dtype=np.int32)
    else:
        train_ds, x_val, y_val = ds, np.zeros((0,)), np.zeros((0,), dtype=np.int32)
    first = train_ds.take(1)
    if not first:
        raise ValueError(f"data.source: {spec.source!r} has no training rows")
    labels = train_ds.unique("y")
    return JobData(
        train=train_ds.materialize(),
        x_val=x_val,
        y_val=y_val,
        n_train=train_ds.count(),
        input_shape=tuple(np.asarray(first[0]["x"]).shape),
        num_classes=int(max(labels)) + 1,
    )
