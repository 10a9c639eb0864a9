"""The job's model, its optimizer, evaluation and the final export: the worker loop's Keras
pieces, with no Ray in them (so they are tested without a cluster)."""

from __future__ import annotations

import importlib
import inspect
import json
from pathlib import Path
from typing import Any

import keras
import numpy as np

from slimray.core.spec import ModelSpec, TrainSpec
from slimray.core.storage import local_copy
from slimray.runtime.checkpoints import EXPORT_FILE, MODEL_FILE, SAVED_MODEL_DIR
from slimray.zoo.models import build_model


def build_job_model(spec: ModelSpec, input_shape: tuple[int, ...], num_classes: int) -> Any:
    """The job's model from a built-in name, `module:function` or a `.keras` file (a local path
    or a URI such as s3://bucket/model.keras)."""
    if spec.kind == "builtin":
        model = build_model(spec.source, input_shape=input_shape, num_classes=num_classes, **spec.kwargs)
    elif spec.kind == "function":
        model = _model_function(spec.source)(**spec.kwargs)
    else:
        with local_copy(spec.source, "model.source") as path:  # a path, or a URI fetched here
            model = keras.models.load_model(path, compile=False)
    if not isinstance(model, keras.Model):
        raise ValueError(f"model.source: {spec.source!r} gave {type(model).__name__}, not a keras.Model")
    got = tuple(model.inputs[0].shape[1:])
    if got != tuple(input_shape):
        raise ValueError(f"model.source: {spec.source!r} takes inputs {got}; the data has {input_shape}")
    return model


def _model_function(source: str) -> Any:
    """The public function `module:function` names, defined in that module (not one it imported,
    such as `subprocess.run`): nothing else is ever called with a spec's kwargs."""
    module_name, _, attr = source.partition(":")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"model.source: cannot import {source!r}: {err}") from err
    if attr.startswith("_") or not inspect.isfunction(fn) or fn.__module__ != module_name:
        where = getattr(fn, "__module__", None)
        raise ValueError(
            f"model.source: {source!r} is not a public function defined in {module_name!r} "
            f"(it is a {type(fn).__name__} from {where!r})"
        )
    return fn


def build_optimizer(train: TrainSpec) -> Any:
    """The spec's optimizer at its learning rate (momentum where it has one)."""
    lr = train.learning_rate
    factories = {
        "adam": lambda: keras.optimizers.Adam(lr),
        "adamw": lambda: keras.optimizers.AdamW(lr),
        "sgd": lambda: keras.optimizers.SGD(lr, momentum=train.momentum),
        "rmsprop": lambda: keras.optimizers.RMSprop(lr, momentum=train.momentum),
        "nadam": lambda: keras.optimizers.Nadam(lr),
    }
    return factories[train.optimizer]()


def gradient_bytes(model: Any) -> int:
    """Bytes one worker's gradients put into the allreduce each step (all trainable weights)."""
    return int(sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in model.trainable_variables))


def evaluate(model, x: np.ndarray, y: np.ndarray, batch: int = 500) -> float:
    """Top-1 accuracy on held-out data (local, no collectives)."""
    if len(x) == 0:
        return float("nan")
    correct = 0
    for i in range(0, len(x), batch):
        out = np.asarray(model(x[i : i + batch], training=False))
        correct += int((out.argmax(-1) == y[i : i + batch]).sum())
    return correct / len(x)


def export_model(directory: Path, model: Any, x_val: np.ndarray, y_val: np.ndarray) -> None:
    """Beside a checkpoint's `model.keras`: the SavedModel, and the accuracy and size of the
    model reloaded from that file (what a user loading it gets), for the driver to copy."""
    model.export(str(directory / SAVED_MODEL_DIR), verbose=False)
    reloaded = keras.models.load_model(directory / MODEL_FILE, compile=False)
    exported = {"exported_accuracy": evaluate(reloaded, x_val, y_val),
                "exported_params": reloaded.count_params()}  # fmt: skip
    (directory / EXPORT_FILE).write_text(json.dumps(exported))
