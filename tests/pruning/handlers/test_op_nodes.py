"""Issue 11: element-wise Keras op nodes (`x + 3.0`, hard-swish written with keras.ops, `x * y`),
`Reshape` that keeps the channel axis (squeeze-and-excite's `(1, 1, C)`, a head's `(classes,)`)
and `Permute` that leaves it last are pruned through exactly; a per-channel constant, a mixing
reshape or a permute that moves the channels freeze their channels instead."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import layers as L

from slimray.pruning import MaskPlanner, build_graph, get_criterion
from tests.pruning.carry_over import check_carry_over, check_dead_channels
from tests.pruning.zoo import randomize


def _hard_swish(x):
    return x * keras.ops.relu6(x + 3.0) / 6.0  # as MobileNetV3 writes it: op nodes, not layers


def _squeeze_excite(x, channels: int):
    s = L.GlobalAveragePooling2D(name="se_pool")(x)
    s = L.Reshape((1, 1, channels), name="se_reshape")(s)
    s = L.Conv2D(channels // 4, 1, activation="relu", name="se_reduce")(s)
    s = L.Conv2D(channels, 1, name="se_expand")(s)
    return L.Multiply(name="se_scale")([x, keras.ops.hard_sigmoid(s)])


def _model() -> keras.Model:
    inputs = keras.Input((8, 8, 3))
    x = _hard_swish(L.Conv2D(16, 3, padding="same", name="c1")(inputs))
    x = _squeeze_excite(x, 16)
    x = L.Permute((2, 1, 3), name="transpose_hw")(x)  # the channel axis stays last
    x = L.ReLU()(L.Conv2D(12, 1, name="c2")(x))
    x = L.Reshape((1, 1, 12), name="pool_reshape")(L.GlobalAveragePooling2D()(x))
    x = L.Conv2D(10, 1, name="head_conv")(x)
    model = keras.Model(inputs, L.Reshape((10,), name="logits")(x))
    randomize(model, seed=0)
    return model


def _x(n=4, seed=1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 8, 8, 3)).astype("float32")


def test_op_nodes_reshape_and_permute_are_pruned_through_exactly():
    model = _model()
    graph = build_graph(model, strict=True)  # nothing is kept whole
    assert {g.id for g in graph.groups} == {"c1+se_expand", "se_reduce", "c2"}
    plan = MaskPlanner().plan(graph, get_criterion("l1")(graph), 0.5)
    small = check_dead_channels(model, graph, plan, _x())
    assert small.get_layer("c1").filters == 8 and small.get_layer("se_reduce").filters == 2
    assert tuple(small.get_layer("se_reshape").target_shape) == (1, 1, 8)
    assert tuple(small.get_layer("pool_reshape").target_shape) == (1, 1, 6)
    assert small.output_shape == model.output_shape == (None, 10)


def test_optimizer_state_carries_over_through_op_nodes(tmp_path):
    optimizer = keras.optimizers.Adam(learning_rate=0.01)
    result = check_carry_over(_model(), optimizer, _x(8, seed=2), _x(8, seed=3), tmp_path)
    assert result.kept_whole == []


@pytest.mark.parametrize(("make", "reason"), [
    (lambda x: x + np.linspace(0, 1, 16).astype("float32"), "per-channel constant of shape (16,)"),
    (lambda x: L.Reshape((8, 128), name="mix")(x), "mixes the channel axis"),
    (lambda x: L.Permute((3, 1, 2), name="chw")(x), "moves the channel axis"),
])  # fmt: skip
def test_what_would_mix_or_slice_channels_is_kept_whole_with_the_reason(make, reason):
    inputs = keras.Input((8, 8, 3))
    x = make(L.Conv2D(16, 1, name="c1")(inputs))
    x = L.Conv2D(4, 1, name="c2")(x) if x.shape[-1] == 16 else x
    out = L.Dense(3)(L.Flatten()(x))
    graph = build_graph(keras.Model(inputs, out))
    [kept] = graph.kept_whole
    assert reason in kept.reason
    assert "c1" not in {g.id for g in graph.groups}  # its channels reach the layer kept whole
