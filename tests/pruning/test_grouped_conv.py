"""Issue 11: grouped convolutions with one input channel per group (depthwise written as
`Conv2D(groups=C)`, as ConvNeXt does, with or without a channel multiplier) prune exactly with
their input channels; optimizer state carries over; groups that mix channels freeze them."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers as L

from slimray.pruning import MaskPlanner, Pruner, build_graph, get_criterion, shrink
from slimray.pruning.surgery import zero_pruned_channels
from tests.pruning.zoo import randomize


def _model() -> keras.Model:
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(16, 1, name="c1")(inputs)
    x = L.Conv2D(16, 3, padding="same", groups=16, name="dw")(x)  # ConvNeXt's depthwise
    x = L.ReLU()(L.BatchNormalization(name="bn")(x))
    x = L.Conv2D(32, 3, padding="same", groups=16, name="dw_x2")(x)  # two outputs per channel
    x = L.Conv2D(12, 1, name="c2")(L.ReLU()(x))
    model = keras.Model(inputs, L.Dense(10, name="head")(L.GlobalAveragePooling2D()(x)))
    randomize(model, seed=0)
    return model


def _x(n=4, seed=1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 8, 8, 3)).astype("float32")


def test_depthwise_style_grouped_convolutions_prune_with_their_inputs():
    model = _model()
    graph = build_graph(model, strict=True)
    assert {g.id for g in graph.groups} == {"c1", "c2"}  # dw and dw_x2 follow c1's channels
    plan = MaskPlanner().plan(graph, get_criterion("l1")(graph), 0.5)
    small = shrink(model, graph, plan).model
    assert (small.get_layer("dw").filters, small.get_layer("dw").groups) == (8, 8)
    assert (small.get_layer("dw_x2").filters, small.get_layer("dw_x2").groups) == (16, 8)
    x = _x()
    before = np.asarray(model(x))
    zero_pruned_channels(model, graph, plan)
    after = np.asarray(model(x))
    assert not np.allclose(before, after, atol=1e-4)
    np.testing.assert_allclose(np.asarray(small(x)), after, atol=1e-5)


def test_optimizer_state_carries_over(tmp_path):
    model = _model()
    optimizer = keras.optimizers.SGD(learning_rate=0.05, momentum=0.9)
    x, y = _x(8, seed=2), np.arange(8) % 10
    _step(model, optimizer, x, y)
    result = Pruner("l2").prune(model, 0.5, optimizer=optimizer)
    assert result.frozen == [] and result.after.flops < result.before.flops
    zero_pruned_channels(model, build_graph(model), result.plan)
    x2 = _x(8, seed=3)
    assert _step(result.model, result.optimizer, x2, y) == pytest.approx(
        _step(model, optimizer, x2, y), abs=1e-5
    )
    result.model.save(tmp_path / "small.keras")
    reloaded = keras.models.load_model(tmp_path / "small.keras", compile=False)
    np.testing.assert_allclose(np.asarray(reloaded(x2)), np.asarray(result.model(x2)), atol=1e-6)


def _step(model, optimizer, x, y) -> float:
    with tf.GradientTape() as tape:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, model(x, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
    return float(loss)


def test_groups_of_several_channels_freeze_them():
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(8, 1, name="c1")(inputs)
    x = L.Conv2D(8, 3, groups=2, name="grouped")(x)
    out = L.Dense(3)(L.Flatten()(x))
    graph = build_graph(keras.Model(inputs, out))
    [blocker] = graph.blockers
    assert blocker.path == "grouped" and "4 input channels each" in blocker.reason
    assert "c1" not in {g.id for g in graph.groups}
