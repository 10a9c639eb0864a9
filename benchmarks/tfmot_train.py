"""The tfmot side of bench_tfmot.py; runs inside `.tools/tfmot-venv` (tf_keras, TF_USE_LEGACY_KERAS).

Trains the seed CNN's architecture, dense or with `prune_low_magnitude` (polynomial decay to the
given parameter sparsity), with `model.fit`; prints one JSON line: samples/s in the final phase,
wall time, accuracy and exported model size.

    python tfmot_train.py DATA.npz OUT.json --epochs N --sparsity S --begin B --end E [--dense]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import tempfile
import time

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras as keras


def seed_cnn() -> keras.Model:
    """slimray.zoo.models.seed_cnn (dropout 0.3), layer for layer, in tf_keras."""
    L = keras.layers
    inputs = keras.Input((28, 28, 1))
    x = L.Conv2D(32, 3, padding="same", activation="relu")(inputs)
    x = L.MaxPooling2D()(x)
    x = L.Conv2D(64, 3, padding="same", activation="relu")(x)
    x = L.MaxPooling2D()(x)
    x = L.Flatten()(x)
    x = L.Dropout(0.3)(x)
    x = L.Dense(128, activation="relu")(x)
    x = L.Dropout(0.3)(x)
    return keras.Model(inputs, L.Dense(10, activation="softmax")(x))


class BatchTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times: list[float] = []
        self._start = 0.0

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter() - self._start)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("data")
    p.add_argument("out")
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--sparsity", type=float, required=True)
    p.add_argument("--begin", type=int, required=True)
    p.add_argument("--end", type=int, required=True)
    p.add_argument("--frequency", type=int, default=1)
    p.add_argument("--dense", action="store_true")
    args = p.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    keras.utils.set_random_seed(0)
    d = np.load(args.data)
    start = time.perf_counter()
    model = seed_cnn()
    callbacks: list = [BatchTimer()]
    if not args.dense:
        schedule = tfmot.sparsity.keras.PolynomialDecay(
            0.0, args.sparsity, args.begin, args.end, frequency=args.frequency
        )
        model = tfmot.sparsity.keras.prune_low_magnitude(model, pruning_schedule=schedule)
        callbacks.append(tfmot.sparsity.keras.UpdatePruningStep())
    model.compile(keras.optimizers.Adam(0.003), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(
        d["x_train"],
        d["y_train"],
        batch_size=args.batch,
        epochs=args.epochs,
        shuffle=True,
        callbacks=callbacks,
        verbose=0,
    )
    final = model if args.dense else tfmot.sparsity.keras.strip_pruning(model)
    accuracy = float((final.predict(d["x_val"], verbose=0).argmax(-1) == d["y_val"]).mean())
    wall = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.h5")
        final.save(path, include_optimizer=False)
        with open(path, "rb") as f:
            raw = f.read()
    weights = np.concatenate([w.ravel() for w in final.get_weights()])
    tail = callbacks[0].times[args.end + 1 :] or callbacks[0].times[1:]
    result = {
        "samples_per_second": args.batch / statistics.median(tail),
        "wall_seconds": wall,
        "accuracy": accuracy,
        "params": int(final.count_params()),
        "zero_fraction": float((weights == 0).mean()),
        "model_bytes": len(raw),
        "model_gzip_bytes": len(gzip.compress(raw)),
    }
    with open(args.out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
