"""The checks shared by the layer-kind tests. Dead channels: the pruned model computes what the
big one does with the removed channels zeroed (and zeroing changed its output). Carry-over:
after one step and pruning with the optimizer, the next step's loss matches the big model's, and
the pruned model saves and reloads to the same outputs."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from slimray.pruning import Pruner, PruneResult, build_graph, shrink
from slimray.pruning.surgery import zero_pruned_channels


def check_dead_channels(model, graph, plan, x: np.ndarray):
    """The model `plan` shrinks `model` to; it must equal `model` with the channels zeroed."""
    small = shrink(model, graph, plan).model
    before = np.asarray(model(x))
    zero_pruned_channels(model, graph, plan)
    after = np.asarray(model(x))
    assert not np.allclose(before, after, atol=1e-4)  # the removed channels carried signal
    np.testing.assert_allclose(np.asarray(small(x)), after, atol=1e-5)
    return small


def train_step(model, optimizer, x, y) -> float:
    logits = getattr(model.layers[-1], "activation", None) is not keras.activations.softmax
    with tf.GradientTape() as tape:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=logits)(y, model(x, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
    return float(loss)


def check_carry_over(model, optimizer, x: np.ndarray, x2: np.ndarray, tmp_path: Path) -> PruneResult:
    """Prune `model` at 0.5 (l2) after one step on `x`; the pruned model and optimizer continue
    on `x2` exactly as the big one does. Returns the prune result for further checks."""
    y = np.arange(len(x)) % 10
    train_step(model, optimizer, x, y)  # the optimizer's slots are now non-zero
    result = Pruner("l2").prune(model, 0.5, optimizer=optimizer)
    assert result.after.params < result.before.params and result.after.flops < result.before.flops
    zero_pruned_channels(model, build_graph(model), result.plan)
    big = train_step(model, optimizer, x2, y)
    assert train_step(result.model, result.optimizer, x2, y) == pytest.approx(big, abs=1e-5)
    result.model.save(tmp_path / "small.keras")
    reloaded = keras.models.load_model(tmp_path / "small.keras", compile=False)
    np.testing.assert_allclose(np.asarray(reloaded(x2)), np.asarray(result.model(x2)), atol=1e-6)
    return result
