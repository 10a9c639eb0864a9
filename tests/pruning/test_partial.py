"""Partial pruning (issue 11): layers and op nodes slimray cannot prune through are kept whole,
their channels fixed, and everything else is pruned exactly; `strict` refuses such a model and
names every one at once, with its path in nested models and op nodes as the user wrote them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
from keras import layers as L

from slimray.pruning import (
    BlockedModelError,
    MaskPlanner,
    Pruner,
    build_graph,
    count_model,
    get_criterion,
    shrink,
)
from slimray.pruning.surgery import zero_pruned_channels
from tests.pruning.carry_over import check_carry_over, check_dead_channels
from tests.pruning.zoo import randomize


@keras.saving.register_keras_serializable(package="slimray_partial_tests")
class Mystery(L.Layer):
    """A user layer slimray has no handler for: a learned per-channel affine map."""

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1],), initializer="random_normal", name="w")

    def call(self, x):
        return x * self.w + 0.1


KEPT_WHOLE = {
    "top_mystery": "tests.pruning.test_partial.Mystery",
    "add": "keras.ops.add",
    "block/inner_mystery": "tests.pruning.test_partial.Mystery",
}


def _found(kept_whole) -> dict[str, str]:
    """path -> operation; op nodes' auto-names lose Keras's per-session suffix (add_3 -> add)."""
    return {re.sub(r"_\d+$", "", b.path): b.operation for b in kept_whole}


def _model() -> keras.Model:
    inner_in = keras.Input((6, 6, 12))
    y = L.Conv2D(10, 1, name="inner_conv")(inner_in)
    block = keras.Model(inner_in, Mystery(name="inner_mystery")(y), name="block")
    inputs = keras.Input((8, 8, 3))
    x = L.ReLU()(L.Conv2D(16, 3, name="c1")(inputs))
    x = Mystery(name="top_mystery")(x)  # c1's channels reach it: kept whole
    x = L.Conv2D(16, 1, name="c2")(x)
    x = x + np.linspace(0, 1, 16).astype("float32")  # an op node with a per-channel constant: c2 kept whole
    x = L.ReLU()(L.Conv2D(12, 1, name="c3")(x))  # only supported layers downstream: pruned
    x = block(x)
    out = L.Dense(10, name="head")(L.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, out)
    randomize(model, seed=0)
    return model


def _x(n=4, seed=1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 8, 8, 3)).astype("float32")


def test_strict_refuses_naming_every_layer_kept_whole_with_its_path():
    with pytest.raises(BlockedModelError) as err:
        build_graph(_model(), strict=True)
    assert _found(err.value.kept_whole) == KEPT_WHOLE
    message = str(err.value)
    assert message.startswith("3 layer(s) cannot be pruned through")
    for kept in err.value.kept_whole:
        assert f"'{kept.path}' ({kept.operation})" in message


def test_without_strict_the_rest_is_pruned_exactly():
    model = _model()
    graph = build_graph(model)
    assert _found(graph.kept_whole) == KEPT_WHOLE
    assert [g.id for g in graph.groups] == ["c3"]  # c1, c2 and inner_conv reach a layer kept whole
    plan = MaskPlanner().plan(graph, get_criterion("l1")(graph), 0.5)
    small = check_dead_channels(model, graph, plan, _x())
    assert small.get_layer("c3").filters == 6 and small.get_layer("c1").filters == 16
    assert small.get_layer("block").get_layer("inner_conv").kernel.shape == (1, 1, 6, 10)
    assert small.count_params() < model.count_params()


def test_a_partially_pruned_model_saves_reloads_and_keeps_training_like_the_big_one(tmp_path):
    optimizer = keras.optimizers.SGD(learning_rate=0.05, momentum=0.9)
    result = check_carry_over(_model(), optimizer, _x(8, seed=2), _x(8, seed=3), tmp_path)
    kept_whole = result.summary()["kept_whole"]
    assert {re.sub(r"_\d+$", "", b["path"]): b["operation"] for b in kept_whole} == KEPT_WHOLE


def test_the_cli_reports_layers_kept_whole_and_strict_refuses_them(tmp_path):
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(8, 1, name="c0")(inputs)
    x = L.Conv2D(8, 3, name="c1")(x)
    x = L.Reshape((6, 48), name="mix")(x)  # mixes c1's channels with a spatial axis
    out = L.Dense(3)(L.Flatten()(x))
    keras.Model(inputs, out).save(tmp_path / "m.keras")
    args = [sys.executable, "-m", "slimray.cli", "prune", str(tmp_path / "m.keras"), "--sparsity", "0.5",
            "--output", str(tmp_path / "small.keras"), "--report", str(tmp_path / "r.json")]  # fmt: skip
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "r.json").read_text())
    assert [(b["path"], b["operation"]) for b in report["kept_whole"]] == [("mix", "keras.layers.Reshape")]
    assert [g["id"] for g in report["groups"]] == ["c0"] and report["params_after"] < report["params_before"]
    assert "Kept whole" in proc.stdout
    strict = subprocess.run([*args, "--strict"], capture_output=True, text=True, env=env, timeout=300)
    text = " ".join(strict.stdout.split())
    assert strict.returncode == 2 and "1 layer(s) cannot be pruned through" in text
    assert "'mix' (keras.layers.Reshape)" in text and "mixes the channel axis" in text


@keras.saving.register_keras_serializable(package="slimray_partial_tests")
class TinyNet(keras.Model):
    """A subclassed model used as a layer: the tracer cannot enter it."""

    def __init__(self, units: int = 6, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.dense = L.Dense(units)

    def call(self, x):
        return self.dense(x)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def test_a_nested_subclassed_model_is_kept_whole_and_the_rest_pruned():
    inputs = keras.Input((8,))
    x = L.Dense(12, activation="relu", name="d1")(inputs)
    x = L.Dense(10, activation="relu", name="d2")(x)
    x = TinyNet(name="tiny")(x)
    model = keras.Model(inputs, L.Dense(3, name="head")(L.ReLU()(L.Dense(9, name="d3")(x))))
    randomize(model, seed=0)
    graph = build_graph(model)
    assert [(b.path, b.operation) for b in graph.kept_whole] == [
        ("tiny", "tests.pruning.test_partial.TinyNet")
    ]
    assert {g.id for g in graph.groups} == {"d1", "d3"}  # d2 feeds the model kept whole
    plan = MaskPlanner().plan(graph, get_criterion("l1")(graph), 0.5)
    small = shrink(model, graph, plan).model
    x = np.random.default_rng(1).normal(size=(4, 8)).astype("float32")
    zero_pruned_channels(model, graph, plan)
    np.testing.assert_allclose(np.asarray(small(x)), np.asarray(model(x)), atol=1e-5)


def test_each_layer_kept_whole_reports_the_share_of_flops_it_holds_whole():
    """Mystery holds c1's outputs (and the ReLU between) and c2's inputs: their whole cost, and
    nothing of c3 or the head, whose output channels the model output holds anyway."""
    inputs = keras.Input((8, 8, 3))
    x = L.ReLU(name="relu")(L.Conv2D(16, 3, name="c1")(inputs))
    x = L.Conv2D(12, 1, name="c2")(Mystery(name="mystery")(x))
    x = L.Conv2D(10, 1, name="c3")(x)
    model = keras.Model(inputs, L.Dense(10, name="head")(L.GlobalAveragePooling2D()(x)))
    graph = build_graph(model)
    [kept] = graph.kept_whole
    cost = {layer.path: layer.flops for layer in count_model(model, graph).layers}
    held = cost["c1"] + cost["relu"] + cost["c2"]
    assert 0 < kept.flops_share < 1
    assert kept.flops_share == pytest.approx(held / sum(cost.values()), abs=1e-6)
    summary = Pruner("l1").prune(model, 0.5).summary()
    assert summary["kept_whole"][0]["flops_share"] == kept.flops_share


def test_the_strict_refusal_survives_pickling_with_every_layer_kept_whole():
    """Regression: Ray pickles a worker's error; unpickling rebuilt it from its message and
    failed (`'str' object has no attribute 'describe'`), hiding the layers kept whole."""
    import pickle

    with pytest.raises(BlockedModelError) as caught:
        build_graph(_model(), strict=True)
    copy = pickle.loads(pickle.dumps(caught.value))
    assert str(copy) == str(caught.value)
    assert copy.kept_whole == caught.value.kept_whole and len(copy.kept_whole) == 3
