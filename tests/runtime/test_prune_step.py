"""When a job prunes and how much (`prune_step.event_rule`): a sparsity schedule prunes when it
asks for more than the model has; a threshold prunes at each of the schedule's steps; a cost target
steps toward its fraction of the dense count at each of them."""

from __future__ import annotations

import pytest

from slimray.core.spec import parse_spec
from slimray.pruning import CostTarget, Threshold
from slimray.runtime.prune_step import SparsityEvents, TargetEvents, ThresholdEvents, event_rule

SCHEDULE = {"kind": "iterative", "start": 10, "end": 30, "every": 10}


def _prune(**prune):
    spec = parse_spec({"model": {"source": "seed_cnn"}, "data": {"source": "mnist"}, "train": {"steps": 40},
                       "prune": {"schedule": SCHEDULE, **prune}})  # fmt: skip
    return event_rule(spec.prune)


def test_a_threshold_prunes_at_each_schedule_step():
    rule = _prune(threshold=0.6)
    assert isinstance(rule, ThresholdEvents) and rule.steps == {10, 20, 30}
    assert [rule.amount_at(step, 0.0) for step in (9, 10, 11)] == [None, Threshold(0.6), None]
    # whatever sparsity the model has: the rule, not a target, decides what goes (a resumed job
    # never repeats an event: tests/runtime/test_threshold.py kills a worker after one)
    assert rule.amount_at(20, 0.9) == Threshold(0.6)


def test_a_sparsity_schedule_prunes_only_towards_more_sparsity():
    rule = _prune(sparsity=0.6)
    assert isinstance(rule, SparsityEvents)
    assert rule.amount_at(10, 0.0) == pytest.approx(0.2)
    assert rule.amount_at(20, 0.4) is None  # the model already has it (a resumed job)
    assert rule.amount_at(15, 0.0) is None


def test_a_cost_target_keeps_a_falling_share_of_the_dense_count_at_each_step():
    rule = _prune(target={"params": 0.4})
    assert isinstance(rule, TargetEvents)
    assert rule.amount_at(15, 0.0) is None
    amounts = [rule.amount_at(step, 0.0) for step in (10, 20, 30)]
    assert [(a.metric, round(a.keep, 6), a.dense) for a in amounts] == [
        ("params", 0.8, None), ("params", 0.6, None), ("params", 0.4, None)]  # fmt: skip
    assert isinstance(amounts[0], CostTarget)
