"""Counting: parameters and per-sample FLOPs, checked against hand arithmetic."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers as L

from slimray.pruning import MaskPlanner, build_graph, count_model, get_criterion, shrink


def test_dense_and_conv_flops_by_hand():
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 3, padding="same", name="conv")(inputs)  # 2*9*3*4*64
    x = L.MaxPooling2D(name="pool")(x)  # 4 compares per output: 4*16*4
    x = L.Flatten()(x)
    out = L.Dense(5, name="fc")(x)  # 2*64*5
    cost = count_model(keras.Model(inputs, out))
    by = {c.path: c for c in cost.layers}
    assert by["conv"].flops == 2 * 9 * 3 * 4 * 64
    assert by["pool"].flops == 4 * 16 * 4
    assert by["fc"].flops == 2 * 64 * 5
    assert by["conv"].params == 9 * 3 * 4 + 4
    assert cost.params == 9 * 3 * 4 + 4 + 64 * 5 + 5
    assert cost.flops == sum(c.flops for c in cost.layers)


def test_pruning_halves_the_middle_layer_cost():
    inputs = keras.Input((10,))
    x = L.Dense(20, name="a")(inputs)
    x = L.Dense(20, name="b")(x)
    out = L.Dense(3, name="c")(x)
    model = keras.Model(inputs, out)
    graph = build_graph(model)
    plan = MaskPlanner().plan(graph, get_criterion("l1")(graph), 0.5)
    small = shrink(model, graph, plan).model
    before, after = count_model(model), count_model(small)
    b = {c.path: c.flops for c in before.layers}
    a = {c.path: c.flops for c in after.layers}
    assert a["a"] == b["a"] // 2 and a["b"] == b["b"] // 4 and a["c"] == b["c"] // 2
    assert after.to_dict()["params"] == small.count_params()


def test_shared_layer_flops_count_every_call():
    inputs = keras.Input((6,))
    shared = L.Dense(6, name="shared")
    out = shared(shared(inputs))
    cost = count_model(keras.Model(inputs, out))
    assert cost.layers[0].flops == 2 * (2 * 6 * 6)
    assert np.isclose(cost.params, 42)
