"""Importance criteria: each scores what it claims, per group, and all serialize by name."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers as L

from slimray.pruning import (
    Importance,
    ScoringBatch,
    build_graph,
    criteria,
    get_criterion,
    score_groups,
)
from tests.pruning.zoo import ZOO, randomize


def _mlp(seed=0):
    inputs = keras.Input((3,))
    h = L.Dense(4, activation="relu", name="h")(inputs)
    out = L.Dense(2, activation="softmax", name="out")(h)
    model = keras.Model(inputs, out)
    randomize(model, seed)
    return model


def test_l1_sums_every_weight_of_the_channel_across_the_group():
    model = _mlp()
    graph = build_graph(model)
    w1, b1 = (np.asarray(v) for v in model.get_layer("h").weights)
    w2 = np.asarray(model.get_layer("out").kernel)
    expected = np.abs(w1).sum(0) + np.abs(b1) + np.abs(w2).sum(1)
    (scores,) = get_criterion("l1")(graph)
    np.testing.assert_allclose(scores, expected, rtol=1e-6)


def test_l2_is_the_group_norm():
    model = _mlp()
    graph = build_graph(model)
    w1, b1 = (np.asarray(v) for v in model.get_layer("h").weights)
    w2 = np.asarray(model.get_layer("out").kernel)
    expected = np.sqrt((w1**2).sum(0) + b1**2 + (w2**2).sum(1))
    (scores,) = get_criterion("l2")(graph)
    np.testing.assert_allclose(scores, expected, rtol=1e-6)


def test_bn_scale_reads_gamma_and_falls_back_for_groups_without_bn():
    inputs = keras.Input((4, 4, 3))
    x = L.Conv2D(5, 1, use_bias=False, name="with_bn")(inputs)
    x = L.BatchNormalization(name="bn")(x)
    x = L.Conv2D(3, 1, name="no_bn")(x)
    out = L.Dense(2)(L.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, out)
    randomize(model)
    graph = build_graph(model)
    scores = dict(zip([g.id for g in graph.groups], get_criterion("bn_scale")(graph), strict=True))
    np.testing.assert_allclose(scores["with_bn"], np.abs(np.asarray(model.get_layer("bn").gamma)))
    l1 = dict(zip([g.id for g in graph.groups], get_criterion("l1")(graph), strict=True))
    np.testing.assert_allclose(scores["no_bn"], l1["no_bn"])
    with pytest.raises(ValueError, match="no_bn"):
        get_criterion({"class_name": "bn_scale", "config": {"fallback": None}})(graph)


def test_random_is_reproducible_from_its_seed():
    graph = build_graph(_mlp())
    a = get_criterion({"class_name": "random", "config": {"seed": 7}})(graph)
    b = get_criterion({"class_name": "random", "config": {"seed": 7}})(graph)
    c = get_criterion({"class_name": "random", "config": {"seed": 8}})(graph)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])


def test_taylor_is_mean_abs_activation_times_gradient():
    model = _mlp(seed=2)
    graph = build_graph(model)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 3)).astype("float32")
    y = rng.integers(0, 2, size=16)
    (scores,) = get_criterion("taylor")(graph, ScoringBatch(x, y))
    hidden = keras.Model(model.inputs, model.get_layer("h").output)
    head = model.get_layer("out")
    with tf.GradientTape() as tape:
        a = hidden(x)
        tape.watch(a)
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, head(a)))
    g = tape.gradient(loss, a)
    expected = np.abs(np.asarray(a) * np.asarray(g)).mean(0)
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-9)


def test_apoz_scores_the_fraction_of_nonzero_activations():
    model = _mlp(seed=3)
    graph = build_graph(model)
    x = np.random.default_rng(1).normal(size=(64, 3)).astype("float32")
    (scores,) = get_criterion("apoz")(graph, ScoringBatch(x))
    a = np.asarray(keras.Model(model.inputs, model.get_layer("h").output)(x))
    np.testing.assert_allclose(scores, (a != 0).mean(0))
    assert scores.min() < 1.0  # relu really zeroed something


def test_activation_criteria_need_a_batch():
    graph = build_graph(_mlp())
    with pytest.raises(ValueError, match="taylor.*inputs and targets"):
        get_criterion("taylor")(graph)
    with pytest.raises(ValueError, match="apoz.*inputs"):
        get_criterion("apoz")(graph, ScoringBatch(None))


def test_activation_criteria_name_groups_hidden_inside_nested_models():
    entry = next(e for e in ZOO if e.name == "nested")
    model = entry.build()
    graph = build_graph(model)
    x = entry.inputs(model)
    with pytest.raises(ValueError, match="stem"):
        get_criterion("apoz")(graph, ScoringBatch(x))


@pytest.mark.parametrize("entry", ZOO[:6], ids=lambda e: e.name)
@pytest.mark.parametrize("name", ["taylor", "apoz"])
def test_activation_criteria_score_every_group_of_the_zoo(entry, name):
    model = entry.build()
    graph = build_graph(model)
    x = entry.inputs(model, n=8)
    y = np.zeros(8, dtype="int32")
    scores = get_criterion(name)(graph, ScoringBatch(x, y))
    assert [len(s) for s in scores] == [g.size for g in graph.groups]
    assert all(np.isfinite(s).all() for s in scores)


class _DoublingReducer:
    """Stands in for two workers that hold identical local scores."""

    world_size = 2

    def allreduce(self, values):
        return values * 2


def test_score_groups_averages_over_workers():
    graph = build_graph(_mlp())
    local = get_criterion("l1")(graph)
    (reduced,) = score_groups(graph, get_criterion("l1"), reducer=_DoublingReducer())
    np.testing.assert_allclose(reduced, local[0])


@pytest.mark.parametrize(
    "identifier",
    ["l1", "l2", "bn_scale", "random", "taylor", "apoz",
     {"class_name": "random", "config": {"seed": 11}},
     {"class_name": "bn_scale", "config": {"fallback": "l2"}}],
)  # fmt: skip
def test_every_criterion_round_trips(identifier):
    criterion = get_criterion(identifier)
    again = get_criterion(criteria.serialize(criterion))
    assert again == criterion
    assert again.get_config() == criterion.get_config()
    assert get_criterion(criterion) is criterion


def test_bad_criterion_arguments_are_named():
    with pytest.raises(ValueError, match="Unknown importance criterion 'l7'.*l1"):
        get_criterion("l7")
    with pytest.raises(ValueError, match="seed=-1"):
        get_criterion({"class_name": "random", "config": {"seed": -1}})
    with pytest.raises(ValueError, match="fallback='nope'"):
        get_criterion({"class_name": "bn_scale", "config": {"fallback": "nope"}})
    with pytest.raises(ValueError, match="class_name"):
        get_criterion({"config": {}})
    with pytest.raises(TypeError, match="Cannot interpret 3"):
        get_criterion(3)


def test_user_criterion_registers_by_name():
    @criteria.register("fan_in_test")
    class FanIn(Importance):
        def __call__(self, graph, batch=None):
            return [np.arange(g.size, dtype=float) for g in graph.groups]

    graph = build_graph(_mlp())
    np.testing.assert_array_equal(get_criterion("fan_in_test")(graph)[0], [0, 1, 2, 3])
    assert criteria.serialize(FanIn()) == {"class_name": "fan_in_test", "config": {}}
