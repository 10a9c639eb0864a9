"""The accuracy budget's decisions: a check `recovery_steps` after each event; an event that lost
more than the budget is undone and retried with half its increment, then pruning stops; later
events are capped at what the model could afford; a threshold and a cost target halve the same way."""

from __future__ import annotations

import pytest

from slimray.core.records import BudgetState
from slimray.core.spec import parse_spec
from slimray.pruning import CostTarget, Threshold
from slimray.runtime.accuracy_guard import AccuracyGuard, level_now, rule_amount
from slimray.runtime.checkpoints import TrainState


def _prune(**budget):
    spec = parse_spec({
        "name": "g", "model": {"source": "seed_cnn"}, "data": {"source": "mnist"}, "train": {"steps": 200},
        "prune": {"sparsity": 0.6, "max_accuracy_drop": 0.02, "recovery_steps": 10,
                  "schedule": {"kind": "iterative", "start": 20, "end": 100, "every": 40}, **budget},
    })  # fmt: skip
    return spec.prune


def test_an_event_within_the_budget_passes_and_the_next_one_runs_uncapped():
    guard = AccuracyGuard(_prune())
    assert guard.admit(0.2, level_now=0.0) == 0.2
    guard.before_event(step=20, amount=0.2, level_now=0.0, accuracy=0.90)
    assert guard.pending and guard.admit(0.4, 0.2) is None  # an event waits for the pending check
    assert not guard.is_due(29, final=False) and guard.is_due(30, final=False)
    assert guard.judge(30, accuracy=0.885) is None  # 1.5 points down, the budget is 2
    assert not guard.pending and guard.admit(0.4, 0.2) == 0.4


def test_an_event_over_the_budget_is_undone_retried_at_half_its_increment_then_pruning_stops():
    guard = AccuracyGuard(_prune(max_retries=1))
    guard.before_event(step=20, amount=0.2, level_now=0.0, accuracy=0.90)
    guard.judge(30, accuracy=0.89)
    guard.before_event(step=60, amount=0.4, level_now=0.2, accuracy=0.91)  # dense: the reference stays
    rollback = guard.judge(70, accuracy=0.87)  # 3 points below the dense 0.90
    assert rollback.event_step == 60 and rollback.step == 70 and rollback.reference == 0.90
    assert rollback.level == 0.4 and rollback.retry_level == pytest.approx(0.3)
    assert guard.admit(None, level_now=0.2) == pytest.approx(0.3)  # the retry is due at once
    guard.before_event(step=71, amount=0.3, level_now=0.2, accuracy=0.89)
    assert guard.is_due(81, final=False)
    second = guard.judge(81, accuracy=0.85)
    assert second.retry_level is None and guard.state.stopped  # retries used up: pruning ends
    assert guard.admit(0.6, level_now=0.2) is None
    assert [r.event_step for r in guard.state.rollbacks] == [60, 71]


def test_after_a_passed_retry_later_events_are_capped_at_what_the_model_afforded():
    guard = AccuracyGuard(_prune())
    guard.before_event(step=20, amount=0.4, level_now=0.0, accuracy=0.90)
    guard.judge(30, accuracy=0.80)
    guard.before_event(step=31, amount=guard.admit(None, 0.0), level_now=0.0, accuracy=0.90)
    assert guard.judge(41, accuracy=0.89) is None
    assert guard.admit(0.6, level_now=0.2) is None  # capped at 0.2, where the model already is
    assert guard.admit(0.6, level_now=0.1) == pytest.approx(0.2)


def test_an_event_the_schedule_asks_for_during_a_retrys_check_waits_for_it():
    guard = AccuracyGuard(_prune())
    guard.before_event(step=20, amount=0.4, level_now=0.0, accuracy=0.90)
    guard.judge(30, accuracy=0.80)  # retry at 0.2
    guard.before_event(step=30, amount=guard.admit(None, 0.0), level_now=0.0, accuracy=0.9)
    assert guard.admit(0.5, level_now=0.2) is None and guard.state.deferred == 0.5  # step 35: pending
    assert guard.judge(40, accuracy=0.89) is None
    assert guard.admit(None, level_now=0.2) is None  # deferred, then capped where the model is
    assert guard.state.deferred is None


def test_a_deferred_event_runs_the_step_after_its_check_passes():
    guard = AccuracyGuard(_prune())
    guard.before_event(step=20, amount=0.2, level_now=0.0, accuracy=0.90)
    assert guard.admit(0.4, level_now=0.2) is None  # scheduled inside the check's window
    assert guard.judge(30, accuracy=0.90) is None
    assert guard.admit(None, level_now=0.2) == pytest.approx(0.4) and guard.state.deferred is None


def test_a_violation_at_the_last_step_is_undone_without_a_retry():
    guard = AccuracyGuard(_prune())
    guard.before_event(step=195, amount=0.2, level_now=0.0, accuracy=0.9)
    rollback = guard.judge(200, accuracy=0.5, final=True)
    assert rollback.retry_level is None and guard.state.stopped


def test_stop_ends_pruning_at_the_first_violation_and_the_last_step_forces_a_pending_check():
    guard = AccuracyGuard(_prune(on_violation="stop"))
    guard.before_event(step=195, amount=0.2, level_now=0.0, accuracy=0.9)
    assert guard.is_due(200, final=True) and guard.is_due(196, final=True)  # training ends first
    rollback = guard.judge(196, accuracy=0.5)
    assert rollback.retry_level is None and guard.state.stopped and guard.state.limit == 0.0


def test_the_best_reference_follows_the_best_validated_accuracy():
    guard = AccuracyGuard(_prune(reference="best"))
    guard.before_event(step=20, amount=0.2, level_now=0.0, accuracy=0.90)
    guard.judge(30, accuracy=0.95)
    guard.before_event(step=60, amount=0.4, level_now=0.2, accuracy=0.94)
    assert guard.judge(70, accuracy=0.92).reference == 0.95  # 3 below the best; dense would pass it


@pytest.mark.parametrize(("rule", "failed", "retry"), [
    ({"threshold": 0.8}, Threshold(0.8), Threshold(0.4)),  # a threshold starts from the model as it is
    ({"target": {"flops": 0.4}}, CostTarget("flops", 0.4), CostTarget("flops", 0.7)),
])  # fmt: skip
def test_a_threshold_and_a_cost_target_retry_at_half_their_step(rule, failed, retry):
    guard = AccuracyGuard(_prune(**{"sparsity": None, **rule}))
    assert rule_amount(guard.prune) == failed
    guard.before_event(step=20, amount=failed, level_now=0.0, accuracy=0.9)
    guard.judge(30, accuracy=0.1)
    again = guard.admit(None, level_now=0.0)
    assert type(again) is type(retry)
    assert again.__class__(**{**vars(again), **{k: round(v, 9) for k, v in vars(again).items()
                                                if isinstance(v, float)}}) == retry  # fmt: skip


def test_a_cost_targets_level_counts_against_the_dense_model():
    class Counts:
        flops, params = 300, 50

    class Event:
        flops_before, params_before = 1000, 100

    state = TrainState(events=[Event()])  # type: ignore[list-item]
    assert level_now(CostTarget("flops", 0.5), state, Counts()) == pytest.approx(0.7)
    assert level_now(CostTarget("params", 0.5), TrainState(), Counts()) == 0.0  # no event yet: dense
    assert level_now(0.3, TrainState(sparsity=0.25), Counts()) == 0.25


def test_the_budget_state_round_trips_through_the_checkpointed_train_state():
    guard = AccuracyGuard(_prune())
    guard.before_event(step=20, amount=0.4, level_now=0.0, accuracy=0.9)
    guard.judge(30, accuracy=0.5)
    state = TrainState(step=30, budget=guard.state)
    again = TrainState.from_json(state.to_json()).budget
    assert again == guard.state and isinstance(again, BudgetState) and again.rollbacks[0].step == 30
    resumed = AccuracyGuard(guard.prune, again)  # a restarted group retries the same amount
    assert resumed.admit(None, 0.0) == pytest.approx(0.2)
