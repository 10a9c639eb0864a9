"""A pruned model saves and reloads with plain Keras and gives identical outputs."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from slimray.pruning import Pruner
from tests.pruning.zoo import ZOO, randomize


@pytest.mark.parametrize("entry", ZOO, ids=lambda e: e.name)
def test_pruned_model_round_trips_through_a_keras_file(entry, tmp_path):
    model = entry.build()
    randomize(model, seed=5)
    result = Pruner("l2").prune(model, 0.5)
    path = tmp_path / f"{entry.name}.keras"
    result.model.save(path)
    loaded = keras.models.load_model(path)
    x = entry.inputs(model, n=3)
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(result.model(x)))
    assert loaded.count_params() == result.after.params < result.before.params


def test_pruning_twice_keeps_shrinking_relative_to_the_baseline():
    entry = next(e for e in ZOO if e.name == "vgg")
    model = entry.build()
    pruner = Pruner("l1")
    first = pruner.prune(model, 0.25)
    baseline = {g["id"]: g["size"] for g in first.groups}
    second = pruner.prune(first.model, 0.5, baseline_sizes=baseline)
    widths = {g["id"]: len(g["kept"]) for g in second.groups}
    assert widths == {gid: size - size // 2 for gid, size in baseline.items()}
    assert second.after.flops < first.after.flops < first.before.flops


def test_pruner_config_round_trips():
    planner = {"scope": "global", "min_channels": 2, "round_to": 4, "normalizer": "max"}
    pruner = Pruner({"class_name": "random", "config": {"seed": 3}}, planner)
    again = Pruner.from_config(pruner.get_config())
    assert again.get_config() == pruner.get_config()
    assert again.criterion == pruner.criterion and again.planner == pruner.planner
