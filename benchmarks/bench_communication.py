"""Communication per step as the model shrinks: gradient bytes each worker allreduces, and the
measured allreduce of those gradients between 2 Ray Train workers (the batched cross-replica
allreduce the optimizer runs under MultiWorkerMirroredStrategy), before and after each of the MNIST
example's three prune events. Writes results/communication.{json,md,png}.

    .venv/bin/python benchmarks/bench_communication.py [--size tiny|quick|full] [--repeats N]
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

import benchlib

SPARSITIES = (0.0, 1 / 6, 2 / 6, 3 / 6)  # the example: iterative to 0.5 in three events


def loop(config):
    import keras
    import numpy as np
    import ray.train
    import tensorflow as tf

    from slimray.pruning import Pruner, build_graph
    from slimray.runtime.modeling import gradient_bytes
    from slimray.zoo.models import build_model

    ctx = ray.train.get_context()
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    keras.utils.set_random_seed(0)  # every rank prunes the same way: l1 on the same weights
    model = build_model("seed_cnn", dropout=0.3)
    baseline = {g.id: g.size for g in build_graph(model).groups}
    stages = []
    for sparsity in SPARSITIES:
        if sparsity:
            model = (
                Pruner("l1", {"scope": "local", "round_to": 4})
                .prune(model, sparsity, baseline_sizes=baseline)
                .model
            )
        grads = [
            np.random.default_rng(i).random(tuple(v.shape)).astype("float32")
            for i, v in enumerate(model.trainable_variables)
        ]

        tensors = [tf.constant(g) for g in grads]

        @tf.function
        def allreduce(tensors=tensors):
            # what apply_gradients does under MWMS: one batched allreduce of all the gradients
            values = strategy.run(lambda: [tf.identity(t) for t in tensors])
            return strategy.extended.batch_reduce_to(tf.distribute.ReduceOp.SUM, [(v, v) for v in values])

        times = []
        for i in range(config["repeats"] + 3):
            start = time.perf_counter()
            out = allreduce()
            _ = [strategy.experimental_local_results(t)[0].numpy() for t in out]
            if i >= 3:
                times.append(time.perf_counter() - start)
        stages.append(
            {
                "sparsity": sparsity,
                "params": model.count_params(),
                "gradient_bytes": gradient_bytes(model),
                "allreduce_ms": statistics.median(times) * 1e3,
                "allreduce_ms_all": [t * 1e3 for t in times],
            }
        )
    if ctx.get_world_rank() == 0:
        Path(config["out"]).write_text(json.dumps(stages))


def main() -> None:
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer

    from slimray.runtime.backends.tf_collective import TFCollectiveConfig

    args = benchlib.parser(__doc__).parse_args()
    repeats = args.repeats or benchlib.pick(args.size, 3, 10, 50)
    benchlib.start_ray()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "stages.json"
        DataParallelTrainer(
            loop,
            backend_config=TFCollectiveConfig(),
            train_loop_config={"repeats": repeats, "out": str(out)},
            scaling_config=ScalingConfig(num_workers=2),
            run_config=RunConfig(storage_path=tmp),
        ).fit()
        stages = json.loads(out.read_text())
    ray.shutdown()
    dense = stages[0]
    rows = [
        (
            f"{s['sparsity']:.2f}",
            s["params"],
            s["gradient_bytes"],
            s["gradient_bytes"] / dense["gradient_bytes"],
            s["allreduce_ms"],
            s["allreduce_ms"] / dense["allreduce_ms"],
        )
        for s in stages
    ]
    table = benchlib.markdown_table(
        [
            "channel sparsity",
            "params",
            "gradient bytes/step",
            "bytes / dense",
            "allreduce ms (median)",
            "time / dense",
        ],
        rows,
    )
    table += (
        f"\n2 workers, {repeats} allreduces per stage; the bytes are what the job exports as "
        "`slimray_gradient_allreduce_bytes_per_step`.\n"
    )

    def plot(fig):
        ax = fig.add_subplot(1, 1, 1)
        ax.plot(
            [s["sparsity"] for s in stages],
            [s["gradient_bytes"] / 1e6 for s in stages],
            marker="o",
            label="gradient MB per step",
        )
        ax2 = ax.twinx()
        ax2.plot(
            [s["sparsity"] for s in stages],
            [s["allreduce_ms"] for s in stages],
            marker="s",
            color="tab:red",
            label="allreduce ms",
        )
        ax.set_xlabel("channel sparsity after the event")
        ax.set_ylabel("MB per step")
        ax2.set_ylabel("allreduce ms (median)")
        ax.set_title("Gradient communication per step, seed CNN, 2 workers")

    benchlib.write(
        "communication",
        args.out,
        {"size": args.size, "repeats": repeats, "sparsities": SPARSITIES},
        stages,
        {"stages": [{k: v for k, v in s.items() if k != "allreduce_ms_all"} for s in stages]},
        table,
        plot,
    )


if __name__ == "__main__":
    main()
