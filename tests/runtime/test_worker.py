"""Worker building blocks: the job's model from every kind of source, optimizers, evaluation."""

from __future__ import annotations

import numpy as np
import pytest

from slimray.core.spec import ModelSpec, TrainSpec
from slimray.runtime.modeling import build_job_model, build_optimizer, evaluate


def test_builtin_model_gets_the_data_shape_and_classes():
    model = build_job_model(ModelSpec(source="seed_cnn", kwargs={"fc": 32}), (8, 8, 1), 3)
    assert model.outputs[0].shape[-1] == 3 and model.get_layer("fc").units == 32


def test_module_function_model():
    spec = ModelSpec(source="tests.runtime.custom_models:tiny", kwargs={"units": 5})
    assert build_job_model(spec, (16,), 4).get_layer("hidden").units == 5


def test_keras_file_model(tmp_path):
    from tests.runtime.custom_models import tiny

    path = tmp_path / "m.keras"
    tiny(units=6).save(path)
    assert build_job_model(ModelSpec(source=str(path)), (16,), 4).get_layer("hidden").units == 6


@pytest.mark.parametrize(
    ("source", "shape", "message"),
    [("tests.runtime.custom_models:missing", (16,), "cannot import"),
     ("no_such_module_xyz:build", (16,), "cannot import"),
     ("tests.runtime.custom_models:not_a_model", (16,), "gave str, not a keras.Model"),
     ("tests.runtime.custom_models:tiny", (28, 28, 1), r"takes inputs \(16,\); the data has")],
)  # fmt: skip
def test_model_source_errors_name_the_field(source, shape, message):
    with pytest.raises(ValueError, match=f"model.source: .*{message}"):
        build_job_model(ModelSpec(source=source), shape, 4)


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd", "rmsprop", "nadam"])
def test_every_spec_optimizer_is_built_with_the_learning_rate(name):
    optimizer = build_optimizer(TrainSpec(steps=1, optimizer=name, learning_rate=0.0125))
    assert float(np.asarray(optimizer.learning_rate)) == pytest.approx(0.0125)


def test_evaluate_counts_top1_hits():
    from tests.runtime.custom_models import tiny

    model = tiny()
    x = np.random.default_rng(0).normal(size=(50, 16)).astype("float32")
    predicted = np.asarray(model(x)).argmax(-1)
    y = predicted.copy()
    y[:10] = (y[:10] + 1) % 4
    assert evaluate(model, x, y, batch=16) == pytest.approx(0.8)
