"""Issue 11: grouped convolutions prune exactly by whole groups: one input channel per group
(depthwise written as `Conv2D(groups=C)`, as ConvNeXt does, with or without a multiplier) or
several (ResNeXt); optimizer state carries over."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers as L

from slimray.pruning import MaskPlanner, build_graph, get_criterion
from tests.pruning.carry_over import check_carry_over, check_dead_channels
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
    small = check_dead_channels(model, graph, plan, _x())
    assert (small.get_layer("dw").filters, small.get_layer("dw").groups) == (8, 8)
    assert (small.get_layer("dw_x2").filters, small.get_layer("dw_x2").groups) == (16, 8)


def test_optimizer_state_carries_over(tmp_path):
    optimizer = keras.optimizers.SGD(learning_rate=0.05, momentum=0.9)
    result = check_carry_over(_model(), optimizer, _x(8, seed=2), _x(8, seed=3), tmp_path)
    assert result.kept_whole == []


def _resnext() -> keras.Model:
    """ResNeXt-style: 4 groups of 3 input channels, 2 outputs each."""
    inputs = keras.Input((8, 8, 3))
    stem = L.Conv2D(12, 1, name="stem")(inputs)
    x = L.Conv2D(8, 3, padding="same", groups=4, name="grouped")(stem)
    x = L.BatchNormalization(name="bn")(x)
    x = L.Conv2D(12, 1, name="expand")(L.ReLU()(x))
    model = keras.Model(inputs, L.Dense(10, name="head")(L.GlobalAveragePooling2D()(x)))
    randomize(model, seed=5)
    return model


def test_groups_of_several_channels_are_pruned_whole():
    model = _resnext()
    graph = build_graph(model, strict=True)
    assert graph.group_by_id("stem").size == 4  # one prunable unit per group of 3 channels
    assert graph.group_by_id("expand").size == 12
    plan = MaskPlanner().plan(graph, get_criterion("l1")(graph), 0.5)
    small = check_dead_channels(model, graph, plan, _x())
    grouped = small.get_layer("grouped")
    assert (grouped.groups, grouped.filters, grouped.kernel.shape[-2]) == (2, 4, 3)
    assert small.get_layer("bn").gamma.shape == (4,)


def test_whole_group_pruning_carries_optimizer_state(tmp_path):
    optimizer = keras.optimizers.Adam(learning_rate=0.01)
    result = check_carry_over(_resnext(), optimizer, _x(8, seed=2), _x(8, seed=3), tmp_path)
    assert result.kept_whole == [] and result.model.get_layer("grouped").groups == 2
