"""Pruning engine benchmark: trace/score/surgery time and training throughput before and after
structured pruning, for the built-in models. Writes benchmarks/results/pruning.json.

    .venv/bin/python benchmarks/bench_pruning.py [--sparsity 0.5] [--batch 128] [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

from slimray.pruning import Pruner, build_graph
from slimray.zoo.models import build_model

RESULTS = Path(__file__).parent / "results"
MODELS = {
    "seed_cnn": {"input_shape": (28, 28, 1)},
    "vgg": {"input_shape": (32, 32, 3)},
    "resnet": {"input_shape": (32, 32, 3)},
    "mobilenet": {"input_shape": (32, 32, 3)},
    "mlp": {"input_shape": (28, 28, 1), "hidden1": 1024, "hidden2": 512},
}


def train_throughput(model, optimizer, x, y, steps: int) -> float:
    """Samples/s of a compiled tf.function train step (the runtime's own kind of step)."""
    loss_fn = keras.losses.SparseCategoricalCrossentropy()

    @tf.function
    def step(xb, yb):
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, model(xb, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    step(x, y)  # trace
    start = time.perf_counter()
    for _ in range(steps):
        step(x, y)
    return len(x) * steps / (time.perf_counter() - start)


def bench(name: str, kwargs: dict, sparsity: float, batch: int, steps: int) -> dict:
    keras.utils.set_random_seed(0)
    model = build_model(name, **kwargs)
    x = np.random.default_rng(0).normal(size=(batch, *kwargs["input_shape"])).astype("float32")
    y = np.random.default_rng(1).integers(0, 10, size=batch).astype("int32")
    optimizer = keras.optimizers.Adam()
    dense = train_throughput(model, optimizer, x, y, steps)
    start = time.perf_counter()
    graph = build_graph(model)
    trace = time.perf_counter() - start
    result = Pruner("l1").prune(model, sparsity, optimizer=optimizer)
    pruned = train_throughput(result.model, result.optimizer, x, y, steps)
    return {
        "model": name,
        "groups": len(graph.groups),
        "trace_seconds": round(trace, 4),
        "durations_seconds": {k: round(v, 4) for k, v in result.durations.items()},
        "params": [result.before.params, result.after.params],
        "flops_per_sample": [result.before.flops, result.after.flops],
        "train_samples_per_second": [round(dense, 1), round(pruned, 1)],
        "throughput_gain": round(pruned / dense, 3),
        "flops_ratio": round(result.after.flops / result.before.flops, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    args = parser.parse_args()
    rows = [bench(m, MODELS[m], args.sparsity, args.batch, args.steps) for m in args.models]
    for row in rows:
        print(
            f"{row['model']:>10}: flops x{row['flops_ratio']:.3f}  "
            f"train {row['train_samples_per_second'][0]:>8.0f} -> "
            f"{row['train_samples_per_second'][1]:>8.0f} samples/s  "
            f"gain {row['throughput_gain']:.2f}x  "
            f"surgery {row['durations_seconds']['surgery']:.3f}s"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {
        "command": "benchmarks/bench_pruning.py",
        "args": vars(args),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
        },
        "results": rows,
    }
    (RESULTS / "pruning.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
