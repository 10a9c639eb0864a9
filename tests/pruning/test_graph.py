"""Dependency graph: coupling rules, never-pruned channels, clear errors for what it cannot do."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import layers as L

from slimray.pruning import (
    MaskPlanner,
    UnsupportedLayerError,
    build_graph,
    get_criterion,
    register_layer,
    shrink,
)
from slimray.pruning.handlers.base import _HANDLERS
from slimray.pruning.handlers.core import PassThroughHandler
from slimray.pruning.surgery import zero_pruned_channels


def _ids(graph):
    return {g.id: g.size for g in graph.groups}


def test_model_inputs_and_outputs_are_never_pruned():
    inputs = keras.Input((6,))
    x = L.Dense(5, name="hidden")(inputs)
    out = L.Dense(3, name="out")(x)
    graph = build_graph(keras.Model(inputs, out))
    assert _ids(graph) == {"hidden": 5}


def test_residual_add_ties_both_sides_into_one_group():
    inputs = keras.Input((8, 8, 3))
    a = L.Conv2D(4, 1, name="a")(inputs)
    b = L.Conv2D(4, 3, padding="same", name="b")(a)
    s = L.Add(name="add")([a, b])
    out = L.Dense(2, name="head")(L.GlobalAveragePooling2D()(s))
    graph = build_graph(keras.Model(inputs, out))
    assert _ids(graph) == {"a+b": 4}
    assert set(graph.groups[0].layers) == {"a", "b", "head"}


def test_concatenate_offsets_map_each_input_to_its_own_group():
    inputs = keras.Input((8, 8, 3))
    a = L.Conv2D(3, 1, name="a")(inputs)
    b = L.Conv2D(5, 1, name="b")(inputs)
    c = L.Concatenate()([a, b])
    head = L.Conv2D(2, 1, name="head")(c)
    model = keras.Model(inputs, L.Flatten()(head))
    graph = build_graph(model)
    assert _ids(graph) == {"a": 3, "b": 5}
    rec = graph.record_by_path("head")
    g, c_idx = graph.locate(rec.in_ids[0])
    assert g.tolist() == [0] * 3 + [1] * 5
    assert c_idx.tolist() == [0, 1, 2, 0, 1, 2, 3, 4]


def test_concatenate_on_a_spatial_axis_ties_channels():
    inputs = keras.Input((4, 4, 3))
    a = L.Conv2D(6, 1, name="a")(inputs)
    b = L.Conv2D(6, 1, name="b")(inputs)
    c = L.Concatenate(axis=1)([a, b])
    out = L.Dense(2)(L.Flatten()(c))
    assert _ids(build_graph(keras.Model(inputs, out))) == {"a+b": 6}


def test_flatten_maps_a_channel_to_its_strided_positions():
    inputs = keras.Input((2, 3, 4))
    x = L.Conv2D(4, 1, name="c")(inputs)
    x = L.Flatten()(x)
    out = L.Dense(2, name="d")(x)
    graph = build_graph(keras.Model(inputs, out))
    g, c = graph.locate(graph.record_by_path("d").in_ids[0])
    assert (g == 0).all()
    assert c.tolist() == [0, 1, 2, 3] * 6


def test_depthwise_multiplier_repeats_channels():
    inputs = keras.Input((6, 6, 3))
    x = L.Conv2D(4, 1, name="c")(inputs)
    x = L.DepthwiseConv2D(3, depth_multiplier=3, name="dw")(x)
    out = L.Dense(2)(L.GlobalAveragePooling2D()(x))
    graph = build_graph(keras.Model(inputs, out))
    _, c = graph.locate(graph.record_by_path("dw").out_ids[0])
    assert c.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]


def test_broadcast_add_keeps_the_channels():
    inputs = keras.Input((4, 4, 3))
    a = L.Conv2D(5, 1, name="a")(inputs)
    b = L.Conv2D(1, 1, name="b")(inputs)
    s = L.Add()([a, b])
    out = L.Dense(2)(L.GlobalAveragePooling2D()(s))
    assert _ids(build_graph(keras.Model(inputs, out))) == {}


def test_softmax_mixes_channels_so_its_inputs_stay():
    inputs = keras.Input((6,))
    x = L.Dense(5, name="logits")(inputs)
    x = L.Softmax()(x)
    x = L.Dense(4, name="mid")(x)
    x = L.Activation("softmax")(x)
    out = L.Dense(2)(x)
    assert _ids(build_graph(keras.Model(inputs, out))) == {}


def test_shared_layer_ties_its_inputs_and_outputs():
    inputs = keras.Input((4, 4, 3))
    a = L.Conv2D(5, 1, name="a")(inputs)
    b = L.Conv2D(5, 3, padding="same", name="b")(inputs)
    shared = L.Conv2D(6, 1, name="shared")
    s = L.Concatenate()([shared(a), shared(b)])
    out = L.Dense(2)(L.GlobalAveragePooling2D()(s))
    model = keras.Model(inputs, out)
    graph = build_graph(model)
    assert _ids(graph) == {"a+b": 5, "shared": 6}
    plan = MaskPlanner().plan(graph, get_criterion("l1")(graph), 0.5)
    small = shrink(model, graph, plan).model
    assert small.get_layer("shared").kernel.shape == (1, 1, 3, 3)


def test_unsupported_layer_error_names_layer_and_class():
    inputs = keras.Input((4, 4, 3))
    x = L.Conv2D(4, 1, name="c")(inputs)
    x = L.Reshape((4, 16), name="odd_reshape")(x)  # the channel axis mixed with a spatial one
    out = L.Dense(2)(L.Flatten()(x))
    with pytest.raises(UnsupportedLayerError, match=r"'odd_reshape'.*Reshape.*register_layer"):
        build_graph(keras.Model(inputs, out), strict=True)


def test_channels_first_is_refused_with_the_layer_name():
    inputs = keras.Input((3, 8, 8))
    x = L.Conv2D(4, 3, data_format="channels_first", name="cf")(inputs)
    out = L.Dense(2)(L.Flatten()(x))
    with pytest.raises(UnsupportedLayerError, match=r"'cf'.*channels_first"):
        build_graph(keras.Model(inputs, out), strict=True)


def test_subclassed_model_is_refused():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.d = L.Dense(2)

        def call(self, x):
            return self.d(x)

    net = Net()
    net(np.zeros((1, 3)))
    with pytest.raises(UnsupportedLayerError, match="subclassed"):
        build_graph(net)


def test_not_a_model_is_a_type_error():
    with pytest.raises(TypeError, match="keras.Model"):
        build_graph(L.Dense(3))


@keras.saving.register_keras_serializable(package="slimray_tests")
class Scale(L.Layer):
    """A user layer: multiplies each channel by a learned factor."""

    def build(self, input_shape):
        self.factor = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="factor")

    def call(self, x):
        return x * self.factor


class ScaleHandler(PassThroughHandler):
    def param_axes(self, layer, in_ids, out_ids, *, parts, path):
        return {"factor": {0: in_ids[0]}}


def test_user_layer_registered_with_one_call_is_pruned_exactly():
    inputs = keras.Input((6,))
    x = L.Dense(8, activation="relu", name="h")(inputs)
    x = Scale(name="scale")(x)
    out = L.Dense(3, name="out")(x)
    model = keras.Model(inputs, out)
    with pytest.raises(UnsupportedLayerError, match="Scale"):
        build_graph(model, strict=True)
    assert [b.path for b in build_graph(model).kept_whole] == ["scale"]  # partial: kept whole
    register_layer(Scale, ScaleHandler())
    try:
        model.get_layer("scale").factor.assign(np.arange(1, 9, dtype="float32"))
        graph = build_graph(model)
        plan = MaskPlanner().plan(graph, get_criterion("l1")(graph), 0.5)
        small = shrink(model, graph, plan).model
        assert small.get_layer("scale").factor.shape == (4,)
        zero_pruned_channels(model, graph, plan)
        x = np.random.default_rng(0).normal(size=(5, 6)).astype("float32")
        np.testing.assert_allclose(small(x), model(x), atol=1e-5)
    finally:
        del _HANDLERS[Scale]


def test_register_layer_validates_arguments():
    with pytest.raises(TypeError, match="class"):
        register_layer("Dense", PassThroughHandler())
    with pytest.raises(TypeError, match="LayerHandler"):
        register_layer(L.Dense, object())


def test_layer_normalization_groups_are_pruned_structurally():
    inputs = keras.Input((5, 6))
    x = L.Dense(8, name="proj")(inputs)
    x = L.LayerNormalization(name="ln")(x)
    out = L.Dense(2)(L.Flatten()(x))
    model = keras.Model(inputs, out)
    graph = build_graph(model)
    assert _ids(graph) == {"proj": 8}
    plan = MaskPlanner().plan(graph, get_criterion("l2")(graph), 0.25)
    small = shrink(model, graph, plan).model
    assert small.get_layer("ln").gamma.shape == (6,)
    assert small.count_params() < model.count_params()


def test_sequential_model_is_traced():
    model = keras.Sequential([keras.Input((4,)), L.Dense(7, name="a"), L.ReLU(), L.Dense(2)])
    graph = build_graph(model)
    assert _ids(graph) == {"a": 7}
    plan = MaskPlanner().plan(graph, get_criterion("l1")(graph), 0.5)
    small = shrink(model, graph, plan).model
    assert isinstance(small, keras.Sequential)
    assert small.get_layer("a").units == 4


def test_unbuilt_sequential_is_refused():
    with pytest.raises(UnsupportedLayerError, match="no Input"):
        build_graph(keras.Sequential([L.Dense(3)], name="lazy"))


def test_rescaling_passes_channels_unless_per_channel():
    inputs = keras.Input((4, 4, 3))
    x = L.Rescaling(1 / 255.0)(inputs)
    x = L.Conv2D(6, 1, name="c")(x)
    x = L.Rescaling(2.0, offset=0.0, name="scalar")(x)
    x = L.Conv2D(5, 1, name="d")(x)
    x = L.Rescaling([1.0, 2.0, 3.0, 4.0, 5.0], name="per_channel")(x)
    out = L.Dense(2)(L.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, out)
    graph = build_graph(model)
    assert _ids(graph) == {"c": 6}
    plan = MaskPlanner().plan(graph, get_criterion("l1")(graph), 0.5)
    small = shrink(model, graph, plan).model
    x = np.random.default_rng(0).normal(size=(2, 4, 4, 3)).astype("float32")
    zero_pruned_channels(model, graph, plan)
    np.testing.assert_allclose(small(x), model(x), atol=1e-5)
