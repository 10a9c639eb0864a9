"""Checkpoints carry the shrunk architecture, weights, optimizer and scheduler state."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from slimray.core.records import KeptWholeLayer, PruneDurations, PruneEvent
from slimray.pruning import Pruner
from slimray.runtime.checkpoints import STATE_FILE, TrainState, read_checkpoint, write_checkpoint
from slimray.zoo.models import build_model


def _trained(model, optimizer):
    x = np.random.default_rng(0).normal(size=(8, 12, 12, 1)).astype("float32")
    y = np.arange(8) % 10
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, model(x)))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))


def _event(step: int) -> PruneEvent:
    return PruneEvent(
        step=step, target_sparsity=0.5, sparsity=0.5, groups_pruned=1, channels_before=8,
        channels_after=4, params_before=100, params_after=50, flops_before=200, flops_after=100,
        digest="abc", local_scores_sha="def", durations=PruneDurations(score=0.1, retrace=0.2),
        kept_whole=[KeptWholeLayer(path="lstm", operation="keras.layers.LSTM", reason="mixes")],
    )  # fmt: skip


def test_round_trip_of_a_pruned_model_and_its_optimizer(tmp_path):
    model = build_model("seed_cnn", input_shape=(12, 12, 1), conv1=8, conv2=8, fc=16)
    optimizer = keras.optimizers.Adam(0.01)
    _trained(model, optimizer)
    result = Pruner("l1").prune(model, 0.5, optimizer=optimizer)
    state = TrainState(step=31, sparsity=0.5, baseline_sizes={"conv1": 8},
                       events=[_event(30)])  # fmt: skip
    path = write_checkpoint(tmp_path / "ckpt", result.model, result.optimizer, state)
    model2, optimizer2, state2 = read_checkpoint(path)
    assert state2.step == 31 and state2.events == state.events
    assert state2.events[0].durations.retrace == 0.2
    stored = json.loads((path / STATE_FILE).read_text())["events"][0]
    assert stored["frozen"][0]["path"] == "lstm"  # the wire name: report.json is unchanged
    assert state2.baseline_sizes == {"conv1": 8}
    assert model2.get_layer("conv1").filters == 4
    for a, b in zip(result.model.weights, model2.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert type(optimizer2) is keras.optimizers.Adam
    assert int(optimizer2.iterations.numpy()) == 1
    for a, b in zip(result.optimizer.variables, optimizer2.variables, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_an_incomplete_checkpoint_is_refused(tmp_path):
    model = build_model("mlp", input_shape=(4,), hidden1=4, hidden2=4)
    optimizer = keras.optimizers.SGD()
    optimizer.build(model.trainable_variables)
    path = write_checkpoint(tmp_path / "c", model, optimizer, TrainState())
    (path / STATE_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="incomplete checkpoint"):
        read_checkpoint(path)


def test_rewriting_replaces_the_directory_whole(tmp_path):
    model = build_model("mlp", input_shape=(4,), hidden1=4, hidden2=4)
    optimizer = keras.optimizers.SGD()
    optimizer.build(model.trainable_variables)
    write_checkpoint(tmp_path / "c", model, optimizer, TrainState(step=1))
    write_checkpoint(tmp_path / "c", model, optimizer, TrainState(step=2))
    assert read_checkpoint(tmp_path / "c")[2].step == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]  # no temp dirs left behind


@pytest.mark.parametrize("fails_at", [0, 1])
def test_a_kill_while_replacing_leaves_a_complete_checkpoint(tmp_path, monkeypatch, fails_at):
    """Regression: the old checkpoint was deleted before the new one was in place."""
    import os

    import slimray.runtime.checkpoints as checkpoints

    model = build_model("mlp", input_shape=(4,), hidden1=4, hidden2=4)
    optimizer = keras.optimizers.SGD()
    optimizer.build(model.trainable_variables)
    write_checkpoint(tmp_path / "c", model, optimizer, TrainState(step=1))
    calls, real_replace = [], os.replace

    def killed(src, dst):  # the process dies at the `fails_at`-th rename of the swap
        if len(calls) == fails_at:
            raise KeyboardInterrupt("killed")
        calls.append(dst)
        real_replace(src, dst)

    monkeypatch.setattr(checkpoints.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        write_checkpoint(tmp_path / "c", model, optimizer, TrainState(step=2))
    monkeypatch.undo()
    assert read_checkpoint(tmp_path / "c")[2].step == 1


def test_a_file_that_differs_from_the_manifest_is_refused_naming_it(tmp_path):
    from slimray.runtime.checkpoints import MANIFEST_FILE, MODEL_FILE, CorruptCheckpointError

    model = build_model("mlp", input_shape=(4,), hidden1=4, hidden2=4)
    optimizer = keras.optimizers.SGD()
    optimizer.build(model.trainable_variables)
    path = write_checkpoint(tmp_path / "c", model, optimizer, TrainState(step=3))
    assert set(json.loads((path / MANIFEST_FILE).read_text())) >= {MODEL_FILE, STATE_FILE}
    data = (path / MODEL_FILE).read_bytes()
    (path / MODEL_FILE).write_bytes(data[: len(data) // 2])  # a truncated upload
    with pytest.raises(CorruptCheckpointError, match=f"{MODEL_FILE} is {len(data) // 2} bytes"):
        read_checkpoint(path)
