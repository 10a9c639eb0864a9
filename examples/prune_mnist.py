"""Train the seed CNN on the 5,000 real MNIST digits, prune half its channels structurally,
fine-tune, and compare accuracy and throughput of the dense and the pruned model."""

from __future__ import annotations

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
from rich.console import Console
from rich.table import Table

from slimray.pruning import Pruner, ScoringBatch
from slimray.zoo.datasets import load_builtin
from slimray.zoo.models import build_model

console = Console()


def throughput(model: keras.Model, x: np.ndarray, batch: int = 256, repeats: int = 5) -> float:
    """Training-step samples/s (forward + backward + update) on a fixed batch."""
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    xb, yb = x[:batch], np.zeros(batch, dtype="int32")
    model.train_on_batch(xb, yb)  # trace once
    start = time.perf_counter()
    for _ in range(repeats):
        model.train_on_batch(xb, yb)
    return batch * repeats / (time.perf_counter() - start)


def main() -> None:
    keras.utils.set_random_seed(0)
    data = load_builtin("mnist", validation_split=0.2, seed=0)
    model = build_model("seed_cnn", input_shape=data.input_shape, num_classes=10)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    console.print("[bold]training the dense seed CNN[/] on 4,000 real MNIST digits")
    model.fit(data.x_train, data.y_train, epochs=10, batch_size=64, verbose=0)
    dense_acc = model.evaluate(data.x_val, data.y_val, verbose=0)[1]

    batch = ScoringBatch(data.x_train[:512], data.y_train[:512])
    result = Pruner("taylor", {"round_to": 4}).prune(model, 0.5, batch=batch)
    small = result.model
    small.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    pruned_acc = small.evaluate(data.x_val, data.y_val, verbose=0)[1]
    small.fit(data.x_train, data.y_train, epochs=3, batch_size=64, verbose=0)
    tuned_acc = small.evaluate(data.x_val, data.y_val, verbose=0)[1]

    dense_tp = throughput(build_model("seed_cnn"), data.x_train)
    small_tp = throughput(keras.models.clone_model(small), data.x_train)
    table = Table(title="seed CNN on 1,000 held-out MNIST digits")
    for col in ("model", "params", "FLOPs/sample", "accuracy", "train samples/s"):
        table.add_column(col, justify="right")
    table.add_row("dense", f"{result.before.params:,}", f"{result.before.flops:,}",
                  f"{dense_acc:.3f}", f"{dense_tp:,.0f}")  # fmt: skip
    table.add_row("pruned 50%", f"{result.after.params:,}", f"{result.after.flops:,}",
                  f"{pruned_acc:.3f}", "")  # fmt: skip
    table.add_row("pruned + 3 epochs", "", "", f"{tuned_acc:.3f}", f"{small_tp:,.0f}")
    console.print(table)
    console.print(f"throughput gain {small_tp / dense_tp:.2f}x")


if __name__ == "__main__":
    main()
