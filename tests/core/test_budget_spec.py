"""`prune.max_accuracy_drop` and its settings: round-trip, defaults, and every check of an event
that could not come before the next event or before training ends refused naming the field."""

from __future__ import annotations

import json

import pytest

from slimray.core.spec import SpecError, parse_spec

JOB = {
    "model": {"source": "seed_cnn"},
    "data": {"source": "mnist"},
    "train": {"steps": 100},
    "prune": {"sparsity": 0.5, "max_accuracy_drop": 0.01,
              "schedule": {"kind": "iterative", "start": 20, "end": 60, "every": 20}},
}  # fmt: skip


def _job(**prune):
    return {**JOB, "prune": {**JOB["prune"], **prune}}


def test_a_budget_round_trips_with_its_defaults():
    assert parse_spec(_job(recovery_steps=20)).prune.recovery_steps == 20  # checked right before the next
    spec = parse_spec(_job(recovery_steps=15))
    prune = spec.prune
    assert (prune.max_accuracy_drop, prune.recovery_steps, prune.on_violation, prune.max_retries,
            prune.reference) == (0.01, 15, "retry_smaller", 2, "dense")  # fmt: skip
    assert parse_spec(json.loads(json.dumps(spec.model_dump(mode="json")))) == spec


@pytest.mark.parametrize(("patch", "says"), [
    ({"recovery_steps": 21}, r"prune: .*recovery_steps 21 is longer than the 20 steps between the "
                             r"schedule's events at steps 20 and 40"),
    ({"max_accuracy_drop": 0}, r"prune.max_accuracy_drop: Input should be greater than 0 \(got 0\)"),
    ({"max_accuracy_drop": 1.0}, r"prune.max_accuracy_drop: Input should be less than 1"),
    ({"on_violation": "shrug"}, r"prune.on_violation: Input should be 'retry_smaller' or 'stop'"),
    ({"reference": "last"}, r"prune.reference: Input should be 'dense' or 'best'"),
    ({"recovery_steps": 0}, r"prune.recovery_steps: Input should be greater than or equal to 1"),
])  # fmt: skip
def test_a_bad_budget_is_refused_naming_the_field(patch, says):
    with pytest.raises(SpecError, match=says):
        parse_spec(_job(**patch))


def test_the_last_events_check_must_come_before_training_ends():
    says = r"the last event is at step 60, so its accuracy check \(15 steps later\) comes after train.steps"
    with pytest.raises(SpecError, match=rf"prune.recovery_steps: {says} 70"):
        parse_spec({**_job(recovery_steps=15), "train": {"steps": 70}})
    parse_spec({**_job(recovery_steps=15), "train": {"steps": 75}})  # just fits
    parse_spec({**_job(recovery_steps=15), "train": {"epochs": 1}})  # steps known with the data


def test_a_budget_without_validation_data_is_refused():
    says = "prune.max_accuracy_drop needs validation data to check each event against, but train.validation"
    with pytest.raises(SpecError, match=says):
        parse_spec({**_job(recovery_steps=15), "train": {"steps": 100, "validation_split": 0}})


def test_without_a_budget_its_settings_check_nothing():
    spec = parse_spec({**_job(max_accuracy_drop=None, recovery_steps=500), "train": {"steps": 70}})
    assert spec.prune.max_accuracy_drop is None
