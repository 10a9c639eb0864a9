"""The auto schedule's decisions: the masks' distance, when pruning starts (settled or at the
latest step), and the events that follow (`prune_step.AutoEvents`)."""

from __future__ import annotations

import pytest

from slimray.core.records import AutoState
from slimray.core.schedule_spec import AutoSpec
from slimray.core.spec import parse_spec
from slimray.pruning import CostTarget, PrunePlan, Threshold
from slimray.runtime.early_bird import EarlyBird, early_bird, mask_distance
from slimray.runtime.prune_step import AutoEvents, event_rule

SIZES = {"a": 6, "b": 4}


def _plan(a, b):
    return PrunePlan(keep={"a": tuple(a), "b": tuple(b)}, sizes=SIZES)


def test_the_distance_is_the_share_of_channels_whose_choice_changed():
    before = {"a": [0, 1, 2], "b": [0, 1]}
    assert mask_distance(before, _plan([0, 1, 2], [0, 1])) == 0.0
    assert mask_distance(before, _plan([0, 1, 3], [0, 1])) == pytest.approx(2 / 10)  # 2 dropped, 3 kept
    assert mask_distance(before, _plan([3, 4, 5], [2, 3])) == pytest.approx(10 / 10)
    assert mask_distance({}, _plan([0], [])) == pytest.approx(1 / 10)  # a group it never saw


def _watch(bird, state, plans):
    """Feed one plan per due check from step 0; the steps a plan was asked for."""
    asked, plans = [], iter(plans)
    for step in range(bird.latest + 1):
        bird.watch(step, state, lambda amount, step=step: asked.append((step, amount)) or next(plans))
    return asked


def test_pruning_starts_after_window_settled_checks_in_a_row():
    """A change of 0.3 resets the streak; two checks under 0.1 then start it."""
    bird = EarlyBird(AutoSpec(every=5, epsilon=0.1, window=2), latest=100, first=0.25)
    state = AutoState()
    masks = [([0, 1, 2], [0, 1]), ([0, 1, 2], [0, 1]), ([0, 4, 5], [0, 1]), ([0, 4, 5], [0, 1]),
             ([0, 4, 5], [0, 1])]  # fmt: skip
    asked = _watch(bird, state, [_plan(*m) for m in masks])
    assert asked == [(0, 0.25), (5, 0.25), (10, 0.25), (15, 0.25), (20, 0.25)]  # none after the start
    checks = bird.drain()
    assert [(c.step, c.distance, c.start) for c in checks] == [
        (0, None, None), (5, 0.0, None), (10, pytest.approx(0.4), None), (15, 0.0, None),
        (20, 0.0, "settled")]  # fmt: skip
    assert state.started_at == 20 and state.last_keep == {"a": [0, 4, 5], "b": [0, 1]}
    assert bird.drain() == []  # each check reaches the driver once


def test_the_latest_step_starts_pruning_when_the_mask_never_settles():
    bird = EarlyBird(AutoSpec(every=4, epsilon=0.1, window=3), latest=9, first=Threshold(0.5))
    state = AutoState()
    flip = [_plan([0, 1, 2], [0, 1]), _plan([3, 4, 5], [2, 3])] * 2
    _watch(bird, state, flip)
    assert [(c.step, c.start) for c in bird.drain()] == [(0, None), (4, None), (8, None), (9, "latest")]
    assert state.started_at == 9 and state.streak == 0


def test_a_resumed_state_that_started_checks_nothing():
    bird = EarlyBird(AutoSpec(every=1), latest=50, first=0.5)
    bird.watch(10, AutoState(started_at=3), lambda amount: pytest.fail("no check after the start"))
    assert bird.drain() == []


def _prune(**prune):
    job = {"model": {"source": "seed_cnn"}, "data": {"source": "mnist"}, "train": {"steps": 200}}
    return parse_spec({**job, "prune": prune}).prune


def _level(amount):
    """A sparsity, a threshold's tau or a target's share kept, with its kind."""
    if isinstance(amount, Threshold):
        return "tau", amount.tau
    if isinstance(amount, CostTarget):
        return amount.metric, pytest.approx(amount.keep)
    return "sparsity", pytest.approx(amount)


@pytest.mark.parametrize(
    ("rule", "first", "last"),
    [({"sparsity": 0.6}, ("sparsity", 0.2), ("sparsity", 0.6)),
     ({"threshold": 0.3}, ("tau", 0.3), ("tau", 0.3)),
     ({"target": {"flops": 0.4}}, ("flops", 0.8), ("flops", 0.4))],
)  # fmt: skip
def test_the_events_follow_the_start_gap_steps_apart_each_a_share_of_the_amount(rule, first, last):
    started = {"at": None}
    prune = _prune(**rule, schedule={"kind": "auto", "events": 3, "spacing": 7})
    events = event_rule(prune, lambda: started["at"])
    assert isinstance(events, AutoEvents) and events.amount_at(0, 0.0) is None  # not started
    started["at"] = 30
    due = {step: events.amount_at(step, 0.0) for step in range(60) if events.amount_at(step, 0.0) is not None}
    assert list(due) == [30, 37, 44]
    assert _level(due[30]) == first and _level(due[44]) == last
    resumed = events.amount_at(37, 0.45)  # a job whose model already has sparsity 0.45 at step 37
    if first[0] == "sparsity":
        assert resumed is None  # its checkpoint holds 0.4: not repeated
    else:  # a threshold or a target is applied at its step whatever the sparsity
        assert _level(resumed) == _level(due[37])


def test_a_budget_spaces_the_events_by_its_recovery_and_the_latest_start_leaves_room_for_them():
    prune = _prune(sparsity=0.5, max_accuracy_drop=0.01, recovery_steps=25, schedule={"kind": "auto"})
    assert event_rule(prune).gap == 25
    bird = early_bird(prune, event_rule(prune), total_steps=200)
    assert bird.latest == 100  # half of training: 3 events 25 apart and a last check fit after it
    assert early_bird(prune, event_rule(prune), total_steps=120).latest == 120 - (2 * 25 + 25)
    one_shot = _prune(sparsity=0.5, schedule={"kind": "one_shot", "step": 3})
    assert early_bird(one_shot, event_rule(one_shot), 10) is None
