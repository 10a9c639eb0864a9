"""Issue 11: per-channel layers pruned exactly: `Normalization` (adapted variables, or mean and
variance given as constants in its config), ConvNeXt's `LayerScale`, and a user's own scale layer
taught with one `register_scale_layer` call; optimizer state carries over."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import layers as L
from keras.src.applications.convnext import LayerScale

from slimray.pruning import MaskPlanner, build_graph, get_criterion, register_scale_layer, shrink
from slimray.pruning.handlers.base import _HANDLERS
from slimray.pruning.surgery import zero_pruned_channels
from tests.pruning.carry_over import check_carry_over, check_dead_channels
from tests.pruning.zoo import randomize


@keras.saving.register_keras_serializable(package="slimray_scale_tests")
class ChannelBias(L.Layer):
    """A user layer: adds a learned value to each of `channels` channels."""

    def __init__(self, channels: int, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.bias = self.add_weight(shape=(channels,), initializer="random_normal", name="bias")

    def call(self, x):
        return x + self.bias

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


def _model() -> keras.Model:
    rng = np.random.default_rng(0)
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(16, 3, padding="same", name="c1")(inputs)
    adapted = L.Normalization(name="adapted")
    x = adapted(x)
    x = LayerScale(0.5, 16, name="layer_scale")(x)
    x = L.Normalization(
        mean=rng.random(16).tolist(), variance=(1 + rng.random(16)).tolist(), name="constant"
    )(x)
    x = ChannelBias(16, name="user_bias")(x)
    x = L.ReLU()(x)
    x = L.Conv2D(8, 1, name="c2")(x)
    model = keras.Model(inputs, L.Dense(10, name="head")(L.GlobalAveragePooling2D()(x)))
    randomize(model, seed=0)
    adapted.adapt_mean.assign(rng.normal(size=16).astype("float32"))  # as `adapt` would
    adapted.adapt_variance.assign((1 + rng.random(16)).astype("float32"))
    adapted.finalize_state()
    return model


def _x(n=4, seed=1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 8, 8, 3)).astype("float32")


@pytest.fixture
def user_layer_registered():
    register_scale_layer(ChannelBias, size_key="channels")  # the one call
    yield
    del _HANDLERS[ChannelBias]


def test_per_channel_layers_are_sliced_exactly(user_layer_registered):
    model = _model()
    graph = build_graph(model, strict=True)
    assert {g.id for g in graph.groups} == {"c1", "c2"}
    plan = MaskPlanner().plan(graph, get_criterion("l1")(graph), 0.5)
    small = check_dead_channels(model, graph, plan, _x())
    assert small.get_layer("adapted").adapt_mean.shape == (8,)
    assert small.get_layer("layer_scale").projection_dim == 8
    assert len(small.get_layer("constant").get_config()["mean"]) == 8
    assert small.get_layer("user_bias").channels == 8


def test_optimizer_state_carries_over(user_layer_registered, tmp_path):
    optimizer = keras.optimizers.Adam(learning_rate=0.01)
    result = check_carry_over(_model(), optimizer, _x(8, seed=2), _x(8, seed=3), tmp_path)
    assert result.kept_whole == []


def test_inception_resnets_scaled_residual_sum_ties_both_branches():
    from keras.src.applications.inception_resnet_v2 import CustomScaleLayer

    inputs = keras.Input((8, 8, 3))
    shortcut = L.Conv2D(16, 1, name="shortcut")(inputs)
    residual = L.Conv2D(16, 3, padding="same", name="residual")(L.ReLU()(shortcut))
    x = CustomScaleLayer(0.17, name="scaled_sum")([shortcut, residual])
    model = keras.Model(inputs, L.Dense(10)(L.GlobalAveragePooling2D()(L.ReLU()(x))))
    randomize(model, seed=0)
    graph = build_graph(model, strict=True)
    assert {g.id for g in graph.groups} == {"residual+shortcut"}
    plan = MaskPlanner().plan(graph, get_criterion("l1")(graph), 0.5)
    small = shrink(model, graph, plan).model
    zero_pruned_channels(model, graph, plan)
    np.testing.assert_allclose(np.asarray(small(_x())), np.asarray(model(_x())), atol=1e-5)
