"""The key property, on ten architectures: removing channels whose weights are zero changes no
output, and the pruned model has exactly the parameters of the architecture built narrower."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from slimray.pruning import MaskPlanner, build_graph, count_model, get_criterion, shrink
from slimray.pruning.surgery import zero_pruned_channels
from tests.pruning.carry_over import check_carry_over
from tests.pruning.zoo import LAYER_KINDS, ZOO, ZooEntry, randomize


def _plan(model, sparsity=0.5, seed=3, scope="local"):
    graph = build_graph(model)
    scores = get_criterion({"class_name": "random", "config": {"seed": seed}})(graph)
    return graph, MaskPlanner(scope=scope).plan(graph, scores, sparsity)


@pytest.mark.parametrize("entry", ZOO, ids=lambda e: e.name)
def test_groups_are_the_architectures_width_knobs(entry: ZooEntry):
    graph = build_graph(entry.build())
    assert {g.id for g in graph.groups} == set(entry.producers)
    for group in graph.groups:
        assert group.size == entry.widths[entry.producers[group.id]]


@pytest.mark.parametrize("scope", ["local", "global"])
@pytest.mark.parametrize("entry", ZOO, ids=lambda e: e.name)
def test_removing_zeroed_channels_changes_no_output(entry: ZooEntry, scope: str):
    model = entry.build()
    randomize(model)
    graph, plan = _plan(model, scope=scope)
    assert plan.removed > 0
    x = entry.inputs(model)
    small = shrink(model, graph, plan).model
    small_out = np.asarray(small(x, training=False))
    # before zeroing, the removed channels carried signal: the property is not vacuous
    assert not np.allclose(np.asarray(model(x, training=False)), small_out, atol=1e-5)
    zero_pruned_channels(model, graph, plan)
    dense_out = np.asarray(model(x, training=False))
    assert small_out.shape == dense_out.shape
    np.testing.assert_allclose(small_out, dense_out, atol=1e-5, rtol=0)
    assert small.count_params() < model.count_params()


@pytest.mark.parametrize("entry", ZOO, ids=lambda e: e.name)
def test_pruned_model_has_the_narrow_architectures_parameter_count(entry: ZooEntry):
    model = entry.build()
    graph, plan = _plan(model, sparsity=0.4)
    small = shrink(model, graph, plan).model
    widths = {entry.producers[g]: len(kept) for g, kept in plan.keep.items()}
    assert any(widths[k] < entry.widths[k] for k in widths)
    reference = entry.build(**widths)
    assert small.count_params() == reference.count_params()
    assert count_model(small).flops == count_model(reference).flops
    assert count_model(small).flops < count_model(model).flops


@pytest.mark.parametrize("entry", ZOO, ids=lambda e: e.name)
def test_original_model_is_untouched(entry: ZooEntry):
    model = entry.build()
    before = [np.array(w) for w in model.weights]
    graph, plan = _plan(model)
    shrink(model, graph, plan)
    after = [np.array(w) for w in model.weights]
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))


@pytest.mark.parametrize("entry", [e for e in ZOO if e.name in LAYER_KINDS], ids=lambda e: e.name)
def test_optimizer_state_carries_over(entry: ZooEntry, tmp_path):
    model = entry.build()
    randomize(model, seed=2)
    optimizer = keras.optimizers.SGD(learning_rate=0.05, momentum=0.9)
    check_carry_over(
        model, optimizer, entry.inputs(model, 8, seed=1), entry.inputs(model, 8, seed=2), tmp_path
    )
