"""Mask planning: how many channels each group keeps, which ones, identical on every worker."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import layers as L

from slimray.core.spec import NORMALIZERS
from slimray.pruning import MaskPlanner, PrunePlan, Threshold, build_graph
from slimray.pruning.planner import NORMALIZERS as PLANNER_NORMALIZERS


def _graph(*widths):
    inputs = keras.Input((4,))
    x = inputs
    for i, w in enumerate(widths):
        x = L.Dense(w, name=f"d{i}")(x)
    return build_graph(keras.Model(inputs, L.Dense(2, name="out")(x)))


def test_local_removes_floor_of_sparsity_per_group_keeping_the_best():
    graph = _graph(10, 7)
    scores = [np.arange(10.0), np.array([5, 1, 4, 2, 3, 0, 6], dtype=float)]
    plan = MaskPlanner().plan(graph, scores, 0.3)
    assert plan.keep["d0"] == (3, 4, 5, 6, 7, 8, 9)  # floor(3.0) removed
    assert plan.keep["d1"] == (0, 2, 3, 4, 6)  # floor(2.1) = 2 removed: the two lowest
    assert plan.removed == 5


def test_ties_go_to_the_lower_channel_index():
    graph = _graph(6)
    plan = MaskPlanner().plan(graph, [np.ones(6)], 0.5)
    assert plan.keep["d0"] == (0, 1, 2)


def test_min_channels_and_round_to():
    graph = _graph(10, 3)
    scores = [np.arange(10.0), np.arange(3.0)]
    plan = MaskPlanner(min_channels=2).plan(graph, scores, 0.9)
    assert len(plan.keep["d0"]) == 2 and len(plan.keep["d1"]) == 2
    plan = MaskPlanner(round_to=4).plan(graph, scores, 0.5)
    assert len(plan.keep["d0"]) == 8  # 5 rounded up to a multiple of 4
    assert len(plan.keep["d1"]) == 3  # 2 -> 4, capped at the group's size


def test_sparsity_is_relative_to_the_baseline_sizes():
    graph = _graph(6)  # a group already pruned from 12 to 6
    plan = MaskPlanner().plan(graph, [np.arange(6.0)], 0.75, baseline_sizes={"d0": 12})
    assert len(plan.keep["d0"]) == 3


def test_global_ranks_normalized_scores_across_groups():
    graph = _graph(4, 4)
    # group d1 is tiny in raw units but has one clearly weak channel
    scores = [np.array([10.0, 11.0, 12.0, 13.0]), np.array([0.001, 0.010, 0.011, 0.012])]
    plan = MaskPlanner(scope="global").plan(graph, scores, 0.25)
    # normalized by group mean: d1[0] = 0.12 and d0[0] = 0.87 are the two weakest
    assert plan.keep == {"d0": (1, 2, 3), "d1": (1, 2, 3)}
    plan = MaskPlanner(scope="global", normalizer="none").plan(graph, scores, 0.25)
    assert plan.keep == {"d0": (0, 1, 2, 3), "d1": (2, 3)}  # raw scale strips the small group


def test_global_respects_min_channels():
    graph = _graph(4, 4)
    scores = [np.array([1.0, 1.0, 1.0, 1.0]), np.array([0.0, 0.0, 0.0, 9.0])]
    plan = MaskPlanner(scope="global", min_channels=2, normalizer="none").plan(graph, scores, 0.5)
    assert len(plan.keep["d1"]) == 2
    assert sum(len(k) for k in plan.keep.values()) == 4


def test_digest_is_stable_and_sensitive():
    graph = _graph(8)
    a = MaskPlanner().plan(graph, [np.arange(8.0)], 0.5)
    b = MaskPlanner().plan(graph, [np.arange(8.0)], 0.5)
    c = MaskPlanner().plan(graph, [np.arange(8.0)[::-1]], 0.5)
    assert a.digest == b.digest != c.digest
    assert PrunePlan.from_dict(a.to_dict()) == a


def test_plan_for_another_model_is_refused():
    plan = MaskPlanner().plan(_graph(8), [np.arange(8.0)], 0.5)
    with pytest.raises(ValueError, match="'d0'.*8 channels.*6"):
        plan.masks(_graph(6))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"scope": "galaxy"}, "scope='galaxy'"), ({"min_channels": 0}, "min_channels=0"),
     ({"round_to": 2.5}, "round_to=2.5"), ({"normalizer": "zscore"}, "normalizer='zscore'")],
)  # fmt: skip
def test_bad_planner_arguments_echo_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MaskPlanner(**kwargs)


@pytest.mark.parametrize("sparsity", [1.0, -0.1, "half"])
def test_bad_sparsity_echoes_the_value(sparsity):
    with pytest.raises(ValueError, match="sparsity="):
        MaskPlanner().plan(_graph(4), [np.arange(4.0)], sparsity)


@pytest.mark.parametrize("scope", ["local", "global"])
def test_a_threshold_keeps_the_channels_whose_normalized_score_reaches_it(scope):
    """The seed's rule: d0's mean is 4.5, so tau 0.5 drops the channels scoring below 2.25; d1's
    scores are even (all 1.0 normalized): none goes. The sparsity is an outcome."""
    graph = _graph(10, 4)
    plan = MaskPlanner(scope=scope).plan(graph, [np.arange(10.0), np.full(4, 3.0)], Threshold(0.5))
    assert plan.keep == {"d0": (3, 4, 5, 6, 7, 8, 9), "d1": (0, 1, 2, 3)}
    by_max = MaskPlanner(normalizer="max").plan(graph, [np.arange(10.0), np.full(4, 3.0)], Threshold(0.5))
    assert by_max.keep["d0"] == (5, 6, 7, 8, 9)  # below half the best (4.5) goes


def test_a_threshold_still_keeps_min_channels_and_rounds_up():
    graph = _graph(8)
    scores = [np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 9.0])]
    assert MaskPlanner().plan(graph, scores, Threshold(1.0)).keep["d0"] == (7,)
    # the floor takes the best of the rest, ties to the lower index
    assert MaskPlanner(min_channels=3).plan(graph, scores, Threshold(1.0)).keep["d0"] == (0, 6, 7)
    assert MaskPlanner(round_to=4).plan(graph, scores, Threshold(1.0)).keep["d0"] == (0, 1, 6, 7)


@pytest.mark.parametrize("tau", [0, -1.0, "high", True])
def test_a_bad_threshold_echoes_the_value(tau):
    with pytest.raises(ValueError, match="threshold="):
        Threshold(tau)


def test_the_specs_normalizers_are_the_planners():
    assert set(NORMALIZERS) == set(PLANNER_NORMALIZERS)


def test_planner_config_round_trips():
    planner = MaskPlanner(scope="global", min_channels=3, round_to=8, normalizer="max")
    assert MaskPlanner.from_config(planner.get_config()) == planner


def test_a_group_spanning_several_producers_never_empties_one():
    """Regression: Concatenate([a, b]) tied to c by an Add is one group; with a's channels
    scored lowest the plan dropped all of them and surgery built Conv2D(filters=0)."""
    from slimray.pruning import shrink
    from slimray.pruning.surgery import zero_pruned_channels

    inputs = keras.Input((8, 8, 3))
    a = L.Conv2D(4, 1, name="a")(inputs)
    b = L.Conv2D(4, 1, name="b")(inputs)
    c = L.Conv2D(8, 1, name="c")(inputs)
    x = L.Add()([L.Concatenate()([a, b]), c])
    model = keras.Model(inputs, L.Dense(2)(L.Flatten()(x)))
    graph = build_graph(model)
    [group] = graph.groups
    assert sorted(group.segments) == [(0, 1, 2, 3), (0, 1, 2, 3, 4, 5, 6, 7), (4, 5, 6, 7)]
    for scope in ("local", "global"):
        plan = MaskPlanner(scope=scope).plan(graph, [np.array([0, 0, 0, 0, 1, 1, 1, 1.0])], 0.5)
        assert len(plan.keep[group.id]) == 4 and plan.keep[group.id][0] < 4  # one of a's stays
        small = shrink(model, graph, plan).model
        assert small.get_layer("a").filters == 1 and small.get_layer("b").filters == 3
    zero_pruned_channels(model, graph, plan)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(small(x)), np.asarray(model(x)), atol=1e-5)
