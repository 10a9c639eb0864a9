"""`scaling.num_workers` as a count or an elastic range {min, max}, and the batch rule that keeps
the global batch as the group resizes (issue 23, point 4)."""

from __future__ import annotations

import json

import pytest

from slimray.core.scaling import WorkerRange, group_batch
from slimray.core.spec import JobSpec, SpecError, parse_spec

BASE = {"model": {"source": "mlp"}, "data": {"source": "digits"}, "train": {"steps": 5, "batch_size": 32}}


def _spec(num_workers, **train) -> JobSpec:
    return parse_spec({**BASE, "train": {**BASE["train"], **train}, "scaling": {"num_workers": num_workers}})


def test_a_range_round_trips_and_a_count_stays_a_count():
    spec = _spec({"min": 2, "max": 8})
    assert spec.scaling.num_workers == WorkerRange(min=2, max=8) and spec.scaling.elastic
    assert (spec.scaling.min_workers, spec.scaling.max_workers) == (2, 8)
    wire = json.loads(spec.model_dump_json())
    assert wire["scaling"]["num_workers"] == {"min": 2, "max": 8}
    assert parse_spec(wire) == spec and JobSpec.model_validate_json(spec.model_dump_json()) == spec
    fixed = _spec(3)
    assert fixed.scaling.num_workers == 3 and not fixed.scaling.elastic
    assert (fixed.scaling.min_workers, fixed.scaling.max_workers) == (3, 3)


@pytest.mark.parametrize(("value", "says"), [
    ({"min": 3, "max": 2}, "min (3) must be <= max (2)"),
    ({"min": 0, "max": 2}, "min: Input should be greater than or equal to 1"),
    ({"min": 1, "max": 2000}, "max: Input should be less than or equal to 1024"),
    ({"min": 1}, "max: Field required"),
    ({"min": 1, "max": 2, "step": 1}, "step: Extra inputs are not permitted"),
    (0, "must be between 1 and 1024"),
])  # fmt: skip
def test_a_bad_worker_count_or_range_is_refused_naming_the_field(value, says):
    with pytest.raises(SpecError) as err:
        _spec(value)
    (problem,) = err.value.problems
    assert problem.startswith("scaling.num_workers: ") and says in problem


def test_the_global_batch_is_kept_across_group_sizes():
    """train.batch_size is per worker at min; a larger group splits the same global batch."""
    scaling = _spec({"min": 2, "max": 4}).scaling
    groups = [group_batch(32, scaling, w) for w in (2, 3, 4)]
    # 3 does not divide 64: rounded down, 1 sample short
    assert [(g.workers, g.per_worker, g.global_batch) for g in groups] == [(2, 32, 64), (3, 21, 63),
                                                                           (4, 16, 64)]  # fmt: skip
    assert group_batch(32, _spec(2).scaling, 2).per_worker == 32  # a fixed count: as before
    assert group_batch(32, scaling, 3).epoch_steps(1000) == (1000 // 3) // 21


def test_a_range_too_wide_for_the_global_batch_is_refused():
    with pytest.raises(
        SpecError,
        match=r"train.batch_size 2 x scaling.num_workers min 1 = a global batch "
        r"of 2, fewer samples than scaling.num_workers max \(4\)",
    ):
        _spec({"min": 1, "max": 4}, batch_size=2)


def test_the_json_schema_offers_a_count_or_a_range():
    from slimray.core.spec import json_schema

    schema = json_schema()
    options = schema["$defs"]["ScalingSpec"]["properties"]["num_workers"]["anyOf"]
    assert {"type": "integer"} in options and {"$ref": "#/$defs/WorkerRange"} in options
    assert schema["$defs"]["WorkerRange"]["required"] == ["min", "max"]
