"""Schedules: when to prune and to what sparsity; all round-trip through the registry."""

from __future__ import annotations

import pytest

from slimray.pruning import get_schedule, schedules
from slimray.pruning.schedules import Iterative, OneShot, PolynomialDecay


def test_one_shot():
    s = OneShot(step=50, sparsity=0.5)
    assert s(49) == (False, 0.0)
    assert s(50) == (True, 0.5)
    assert s(51) == (False, 0.5)


def test_iterative_reaches_the_target_in_equal_steps():
    s = Iterative(start=10, end=40, every=10, sparsity=0.6)
    assert [(t, round(v, 6)) for t, v in s.events()] == [
        (10, 0.15),
        (20, 0.3),
        (30, 0.45),
        (40, 0.6),
    ]
    assert s(25) == (False, pytest.approx(0.3))
    assert s.final_sparsity == pytest.approx(0.6)


def test_polynomial_follows_zhu_and_gupta():
    s = PolynomialDecay(initial_sparsity=0.0, final_sparsity=0.8, begin_step=0, end_step=100,
                        power=3, frequency=30)  # fmt: skip
    events = s.events()
    assert [t for t, _ in events] == [0, 30, 60, 90, 100]
    assert events[0][1] == 0.0 and events[-1][1] == pytest.approx(0.8)
    assert events[1][1] == pytest.approx(0.8 * (1 - 0.7**3))
    values = [v for _, v in events]
    assert values == sorted(values)
    assert s(30) == (True, pytest.approx(events[1][1]))


@pytest.mark.parametrize(
    "schedule",
    [OneShot(3, 0.25), Iterative(0, 100, 25, 0.5), PolynomialDecay(0.1, 0.7, 10, 90, 2.0, 20)],
    ids=lambda s: type(s).__name__,
)
def test_schedules_round_trip(schedule):
    data = schedules.serialize(schedule)
    again = get_schedule(data)
    assert again == schedule and again.events() == schedule.events()
    assert type(schedule).from_config(schedule.get_config()) == schedule


@pytest.mark.parametrize(
    ("factory", "message"),
    [(lambda: OneShot(-1, 0.5), "step=-1"), (lambda: OneShot(1, 1.0), "sparsity=1.0"),
     (lambda: Iterative(10, 5, 1, 0.5), "end=5"), (lambda: Iterative(0, 5, 0, 0.5), "every=0"),
     (lambda: PolynomialDecay(0.0, 0.5, 10, 10), "end_step=10"),
     (lambda: PolynomialDecay(0.0, 0.5, 0, 10, power=0), "power=0"),
     (lambda: get_schedule("cosine"), "Unknown pruning schedule 'cosine'")],
)  # fmt: skip
def test_bad_arguments_echo_the_value(factory, message):
    with pytest.raises(ValueError, match=message):
        factory()


@pytest.mark.parametrize("schedule", [
    {"kind": "one_shot", "step": 7},
    {"kind": "iterative", "start": 10, "end": 95, "every": 20},
    {"kind": "polynomial", "begin_step": 0, "end_step": 250, "frequency": 100},
    {"kind": "polynomial", "begin_step": 5, "end_step": 205, "frequency": 50},
])  # fmt: skip
def test_the_spec_counts_the_events_the_schedule_prunes_at(schedule):
    """The service caps a job's stored prune events by its spec's `event_steps()`: the steps must be
    the ones the worker's schedule prunes at (one copy of the rule, in `core.spec`)."""
    from slimray.core.spec import PruneSpec

    prune = PruneSpec.model_validate({"sparsity": 0.5, "schedule": schedule})
    assert prune.schedule.event_steps() == [at for at, _ in get_schedule(prune.schedule_config()).events()]
