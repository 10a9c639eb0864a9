"""Optimizer state survives surgery: slots sliced like their weights, and training continues
exactly as the big model would with the removed channels held at zero."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from slimray.pruning import (
    build_graph,
    carry_optimizer,
    get_criterion,
    register_optimizer_slots,
    shrink,
)
from slimray.pruning.planner import MaskPlanner
from slimray.pruning.surgery import zero_pruned_channels
from tests.pruning.zoo import ZOO, randomize

ZOO_BY_NAME = {e.name: e for e in ZOO}


def _train_step(model, optimizer, x, y):
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    with tf.GradientTape() as tape:
        loss = loss_fn(y, model(x, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
    return float(loss)


def _batch(entry, model, seed):
    x = entry.inputs(model, n=8, seed=seed)
    y = np.random.default_rng(seed).integers(0, model.outputs[0].shape[-1], size=8)
    return x, y


@pytest.mark.parametrize("name", ["resnet", "seed_cnn", "mobilenet", "inception"])
def test_step_after_surgery_equals_big_step_with_removed_channels_zero(name):
    entry = ZOO_BY_NAME[name]
    model = entry.build(**({"dropout": 0.0} if name == "mobilenet" else {}))  # no random masks
    randomize(model, seed=1)
    optimizer = keras.optimizers.SGD(learning_rate=0.05, momentum=0.9)
    _train_step(model, optimizer, *_batch(entry, model, seed=1))  # momentum is now non-zero

    graph = build_graph(model)
    scores = get_criterion("l2")(graph)
    plan = MaskPlanner().plan(graph, scores, 0.5)
    zero_pruned_channels(model, graph, plan)
    shrunk = shrink(model, graph, plan)
    small_opt = carry_optimizer(optimizer, shrunk.moves, shrunk.model)
    assert int(small_opt.iterations.numpy()) == 1

    x, y = _batch(entry, model, seed=2)
    big_loss = _train_step(model, optimizer, x, y)
    small_loss = _train_step(shrunk.model, small_opt, x, y)
    assert small_loss == pytest.approx(big_loss, abs=1e-5)
    for move in shrunk.moves:
        expected = move.take(np.asarray(move.old))
        np.testing.assert_allclose(np.asarray(move.new), expected, atol=1e-5, rtol=0,
                                   err_msg=move.old.path)  # fmt: skip
    for move in shrunk.moves:
        if move.old.trainable:
            i = optimizer._get_variable_index(move.old)
            j = small_opt._get_variable_index(move.new)
            np.testing.assert_allclose(
                np.asarray(small_opt.momentums[j]),
                move.take(np.asarray(optimizer.momentums[i])),
                atol=1e-5,
                rtol=0,
            )


def test_without_carried_momentum_the_step_differs():
    entry = ZOO_BY_NAME["seed_cnn"]
    model = entry.build()
    randomize(model, seed=1)
    optimizer = keras.optimizers.SGD(learning_rate=0.05, momentum=0.9)
    _train_step(model, optimizer, *_batch(entry, model, seed=1))
    graph = build_graph(model)
    plan = MaskPlanner().plan(graph, get_criterion("l1")(graph), 0.5)
    zero_pruned_channels(model, graph, plan)
    shrunk = shrink(model, graph, plan)
    fresh = keras.optimizers.SGD(learning_rate=0.05, momentum=0.9)
    x, y = _batch(entry, model, seed=2)
    _train_step(model, optimizer, x, y)
    _train_step(shrunk.model, fresh, x, y)
    diffs = [np.abs(np.asarray(m.new) - m.take(np.asarray(m.old))).max() for m in shrunk.moves]
    assert max(diffs) > 1e-3


OPTIMIZERS = [
    keras.optimizers.SGD(momentum=0.9),
    keras.optimizers.Adam(amsgrad=True),
    keras.optimizers.AdamW(weight_decay=0.01),
    keras.optimizers.RMSprop(momentum=0.5, centered=True),
    keras.optimizers.Nadam(),
    keras.optimizers.Adamax(),
    keras.optimizers.Adagrad(),
    keras.optimizers.Lion(),
    keras.optimizers.SGD(momentum=0.9, use_ema=True),
]


@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=lambda o: f"{type(o).__name__}")
def test_every_slot_is_sliced_like_its_variable(optimizer):
    entry = ZOO_BY_NAME["vgg"]
    model = entry.build()
    randomize(model, seed=4)
    optimizer = type(optimizer).from_config(optimizer.get_config())
    for seed in (1, 2):
        _train_step(model, optimizer, *_batch(entry, model, seed=seed))
    graph = build_graph(model)
    plan = MaskPlanner().plan(graph, get_criterion("l1")(graph), 0.5)
    shrunk = shrink(model, graph, plan)
    new = carry_optimizer(optimizer, shrunk.moves, shrunk.model)
    assert new.get_config() == optimizer.get_config()
    assert int(new.iterations.numpy()) == int(optimizer.iterations.numpy()) == 2
    checked = 0
    attributes = ("momentums", "_momentums", "_velocities", "_velocity_hats", "_m", "_u",
                  "_accumulators", "_average_gradients",
                  "_model_variables_moving_average")  # fmt: skip
    for attribute in attributes:
        old_slots, new_slots = getattr(optimizer, attribute, None), getattr(new, attribute, None)
        if not old_slots:
            continue
        for move in shrunk.moves:
            if not move.old.trainable:
                continue
            i = optimizer._get_variable_index(move.old)
            j = new._get_variable_index(move.new)
            old_value = move.take(np.asarray(old_slots[i]))
            assert np.abs(old_value).sum() > 0 or attribute == "_velocity_hats"
            np.testing.assert_array_equal(np.asarray(new_slots[j]), old_value)
            checked += 1
    assert checked >= len(shrunk.model.trainable_variables)


def test_unregistered_optimizer_is_named():
    entry = ZOO_BY_NAME["mlp"]
    model = entry.build()
    optimizer = keras.optimizers.Adafactor()
    optimizer.build(model.trainable_variables)
    graph = build_graph(model)
    plan = MaskPlanner().plan(graph, get_criterion("l1")(graph), 0.5)
    shrunk = shrink(model, graph, plan)
    with pytest.raises(ValueError, match="Adafactor"):
        carry_optimizer(optimizer, shrunk.moves, shrunk.model)


def test_register_optimizer_slots_rejects_non_optimizers():
    with pytest.raises(TypeError, match="optimizer class"):
        register_optimizer_slots(dict, ["x"])
