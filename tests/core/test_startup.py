"""The start-up breakdown from timestamps: parts in order, never negative, adding up."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from slimray.core.startup import STARTUP_PARTS, StartupBreakdown, WorkerMarks


def test_the_parts_are_the_stretches_between_the_timestamps():
    marks = WorkerMarks(process_created=101.0, entered=103.0, imported=111.0, joined=112.5)
    got = StartupBreakdown.measure({"ray": 4.0, "driver": 0.5}, 100.0, marks, 115.0)
    assert got.parts() == {"ray": 4.0, "driver": 0.5, "controller": 1.0, "worker_processes": 2.0,
                           "framework_import": 8.0, "group_join": 1.5, "model_setup": 2.5}  # fmt: skip
    assert got.total == pytest.approx(4.5 + 15.0) and list(got.parts()) == list(STARTUP_PARTS)


def test_a_process_started_before_the_job_is_warm_and_a_skewed_clock_counts_from_the_stamp_before():
    """A warm worker process (prestarted before the trainer) costs the job nothing to create: the
    wait for its function is the controller's; a node's clock ahead of the driver's cannot make a
    part negative or the sum exceed the stretch it covers."""
    early = WorkerMarks(process_created=50.0, entered=100.5, imported=100.7, joined=None)
    got = StartupBreakdown.measure({}, 100.0, early, 101.0)
    assert (got.controller, got.worker_processes, got.group_join) == (0.5, 0.0, 0.0)
    assert got.total == pytest.approx(1.0) and got.warm
    fresh = early.model_copy(update={"process_created": 100.1})
    assert not StartupBreakdown.measure({}, 100.0, fresh, 101.0).warm
    ahead = WorkerMarks(process_created=120.0, entered=121.0, imported=130.0, joined=131.0)
    skewed = StartupBreakdown.measure({}, 100.0, ahead, 110.0)
    assert all(v >= 0 for v in skewed.parts().values()) and skewed.total == pytest.approx(10.0)


def test_no_group_reaching_its_loop_is_all_controller():
    got = StartupBreakdown.measure({"ray": 1.0}, 100.0, None, 160.0)
    assert got.controller == 60.0 and got.total == 61.0 and got.first_trace is None


def test_a_negative_part_is_refused_naming_it():
    with pytest.raises(ValidationError, match="framework_import"):
        StartupBreakdown(framework_import=-0.1)
