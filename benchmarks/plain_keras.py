"""The plain-Keras side of bench_startup.py: the example's job without slimray or Ray, one process,
dense, with `model.fit` — the same model, data, split, optimizer, learning rate, epochs and global
batch. Prints one JSON line: its start-up (process start to `fit`, by part), fit time, accuracy.

    python plain_keras.py SPEC.yaml [--epochs N]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_entered = time.time()

import keras  # noqa: E402  (timed: the framework's import is part of the start-up)
import psutil  # noqa: E402
import yaml  # noqa: E402

from slimray.zoo.datasets import load_builtin  # noqa: E402  (numpy only)
from slimray.zoo.models import seed_cnn  # noqa: E402  (keras only)


class FirstBatch(keras.callbacks.Callback):
    """When the first training batch ended (its step traced and run)."""

    def __init__(self) -> None:
        super().__init__()
        self.ended: float | None = None

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.ended is None:
            self.ended = time.time()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("spec", help="the example's spec (examples/mnist.yaml)")
    p.add_argument("--epochs", type=int, default=None, help="instead of the spec's")
    args = p.parse_args()
    imported = time.time()
    spec = yaml.safe_load(Path(args.spec).read_text())
    train, workers = spec["train"], spec["scaling"]["num_workers"]
    keras.utils.set_random_seed(train["seed"])
    data = load_builtin(spec["data"]["source"], train["validation_split"], train["seed"])
    model = seed_cnn(data.input_shape, data.num_classes, **spec["model"].get("kwargs", {}))
    model.compile(optimizer=keras.optimizers.Adam(train["learning_rate"]),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])  # fmt: skip
    first, fit_called = FirstBatch(), time.time()
    model.fit(data.x_train, data.y_train, batch_size=train["batch_size"] * workers,  # the global batch
              epochs=args.epochs or train["epochs"], verbose=0, callbacks=[first])  # fmt: skip
    fitted = time.time()
    _, accuracy = model.evaluate(data.x_val, data.y_val, verbose=0)
    created = psutil.Process().create_time()
    print(json.dumps({
        "startup": fit_called - created,
        "startup_parts": {"process": _entered - created, "framework_import": imported - _entered,
                          "setup": fit_called - imported},
        "first_batch": (first.ended or fitted) - fit_called,
        "fit": fitted - fit_called,
        "accuracy": float(accuracy),
        "wall_inside": time.time() - created,
    }), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
