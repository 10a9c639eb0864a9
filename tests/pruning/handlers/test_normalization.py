"""Issue 22: a result says when it is approximate. Pruning through LayerNormalization over its
channel axis changes its statistics: the result lists that layer's path; pruning that keeps its
function exact (conv, BN, dense; a LayerNormalization over other axes, or none pruned) lists none."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers as L

from slimray.pruning import Pruner
from tests.pruning.zoo import randomize


def _sequence_model(axis: int = -1) -> keras.Model:
    inner_in = keras.Input((5, 8))
    inner = keras.Model(inner_in, L.LayerNormalization(axis=axis, name="inner_ln")(inner_in), name="block")
    inputs = keras.Input((5, 6))
    x = L.Dense(8, name="proj")(inputs)
    x = L.LayerNormalization(axis=axis, name="ln")(x)
    x = inner(L.Dense(8, name="mid")(x))
    model = keras.Model(inputs, L.Dense(2, name="head")(L.Flatten()(x)))
    randomize(model, seed=0)
    return model


def test_layer_normalization_pruned_over_its_axis_is_reported_by_path_in_model_order():
    result = Pruner("l1").prune(_sequence_model(), 0.5)
    assert result.model.get_layer("ln").gamma.shape == (4,)
    assert result.approximate == ["ln", "block/inner_ln"]
    assert result.summary()["approximate"] == ["ln", "block/inner_ln"]


def test_nothing_pruned_is_exact():
    assert Pruner("l1").prune(_sequence_model(), 0.0).approximate == []


def test_layer_normalization_over_other_axes_is_exact():
    model = _sequence_model(axis=1)  # normalizes over the 5 positions, never the channels
    result = Pruner("l1").prune(model, 0.5)
    assert result.model.get_layer("proj").units == 4
    assert result.approximate == []
    x = np.random.default_rng(1).normal(size=(3, 5, 6)).astype("float32")
    assert result.model(x).shape == (3, 2)


def test_a_conv_batchnorm_dense_model_is_exact():
    inputs = keras.Input((8, 8, 3))
    x = L.ReLU()(L.BatchNormalization(name="bn")(L.Conv2D(16, 3, name="c1")(inputs)))
    x = L.Conv2D(12, 1, name="c2")(x)
    model = keras.Model(inputs, L.Dense(10, name="head")(L.GlobalAveragePooling2D()(x)))
    randomize(model, seed=0)
    result = Pruner("l1").prune(model, 0.5)
    assert result.model.get_layer("c1").filters == 8
    assert result.approximate == [] and result.summary()["approximate"] == []
