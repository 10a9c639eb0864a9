"""Cost budgets: the cost model's estimate against the shrunk model's exact count, and the
planner's search for the least pruning that fits a FLOPs or parameter budget."""

from __future__ import annotations

import numpy as np
import pytest

from slimray.pruning import CostModel, CostTarget, MaskPlanner, build_graph, count_model, shrink
from slimray.zoo.models import build_model


@pytest.fixture(scope="module")
def resnet():
    model = build_model("resnet", input_shape=(16, 16, 3), num_classes=10)
    return model, build_graph(model)


def _scores(graph, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.random(g.size) for g in graph.groups]


@pytest.mark.parametrize("sparsity", [0.3, 0.7])
def test_the_estimate_is_the_shrunk_models_count(resnet, sparsity):
    model, graph = resnet
    plan = MaskPlanner(scope="global").plan(graph, _scores(graph), sparsity)
    estimate = CostModel(graph).count(plan.masks(graph))
    exact = count_model(shrink(model, graph, plan).model)
    assert estimate["params"] == exact.params  # every weight's pruned axes, exactly
    assert estimate["flops"] == pytest.approx(exact.flops, rel=0.01)


@pytest.mark.parametrize("scope", ["global", "local"])
@pytest.mark.parametrize(("metric", "keep"), [("flops", 0.5), ("params", 0.3), ("flops", 0.9)])
def test_the_plan_keeps_the_budget_and_no_less(resnet, scope, metric, keep):
    model, graph = resnet
    dense = getattr(count_model(model, graph), metric)
    plan = MaskPlanner(scope=scope).plan(graph, _scores(graph), CostTarget(metric, keep))
    reached = getattr(count_model(shrink(model, graph, plan).model), metric) / dense
    assert keep - 0.05 <= reached <= keep * 1.01  # within the budget, and not far below it
    assert plan.removed > 0


def test_a_budget_relative_to_the_dense_model_counts_what_earlier_events_removed(resnet):
    model, graph = resnet
    dense = count_model(model, graph).flops
    first = MaskPlanner(scope="global").plan(graph, _scores(graph), CostTarget("flops", 0.7))
    smaller = shrink(model, graph, first).model
    again = build_graph(smaller)
    plan = MaskPlanner(scope="global").plan(again, _scores(again, 1), CostTarget("flops", 0.5, dense=dense))
    reached = count_model(shrink(smaller, again, plan).model).flops / dense
    assert 0.45 <= reached <= 0.505


def test_a_budget_out_of_reach_leaves_every_group_at_its_floor(resnet):
    _, graph = resnet
    plan = MaskPlanner(scope="global", min_channels=2).plan(graph, _scores(graph), CostTarget("params", 1e-6))
    assert {len(kept) for kept in plan.keep.values()} == {2}


def test_a_budget_already_met_removes_nothing(resnet):
    _, graph = resnet
    plan = MaskPlanner().plan(graph, _scores(graph), CostTarget("flops", 1.0))
    assert plan.removed == 0


@pytest.mark.parametrize(
    ("metric", "keep", "message"),
    [("latency", 0.5, "metric must be one of"), ("flops", 0.0, "flops (the fraction kept) must be in (0, 1]"),
     ("params", 1.5, "Received: 1.5"), ("flops", True, "Received: True")],
)  # fmt: skip
def test_a_bad_target_names_the_field_and_the_value(metric, keep, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        CostTarget(metric, keep)
