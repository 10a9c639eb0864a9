"""Allreduce of a channel-score vector between 2 Ray Train workers: `strategy.reduce` against
the `CollectiveReduceV2` reducer slimray uses. Writes benchmarks/results/allreduce.json.

    .venv/bin/python benchmarks/bench_allreduce.py [--size 10000] [--repeats 30]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

RESULTS = Path(__file__).parent / "results"


def loop(config):
    import numpy as np
    import ray.train
    import tensorflow as tf

    from slimray.runtime.backends.tf_collective.reducer import TFCollectiveReducer

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    reducer = TFCollectiveReducer(rank, world)
    values = np.random.default_rng(rank).random(config["size"])
    timings = {"strategy_reduce": [], "collective_reduce_v2": []}
    for i in range(config["repeats"] + 3):
        start = time.perf_counter()
        per_replica = strategy.run(lambda: tf.constant(values))
        strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None).numpy()
        took_strategy = time.perf_counter() - start
        start = time.perf_counter()
        reducer.allreduce(values)
        took_collective = time.perf_counter() - start
        if i >= 3:  # warm-up
            timings["strategy_reduce"].append(took_strategy)
            timings["collective_reduce_v2"].append(took_collective)
    medians = {f"{k}_ms": round(statistics.median(v) * 1e3, 3) for k, v in timings.items()}
    if rank == 0:
        Path(config["out"]).write_text(json.dumps(
            {"command": "benchmarks/bench_allreduce.py", "workers": world, "floats": config["size"],
             "repeats": config["repeats"], "median": medians}, indent=2))  # fmt: skip
    ray.train.report(medians)


def main() -> None:
    import tempfile

    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.tensorflow import TensorflowTrainer

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "allreduce.json"
    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
    trainer = TensorflowTrainer(
        loop, train_loop_config={**vars(args), "out": str(out.resolve())},
        scaling_config=ScalingConfig(num_workers=2),
        run_config=RunConfig(storage_path=tempfile.mkdtemp()),
    )  # fmt: skip
    trainer.fit()
    ray.shutdown()
    print(out.read_text())


if __name__ == "__main__":
    main()
