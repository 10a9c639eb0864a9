"""Elastic training (issue 23, point 4), the driver's side: each group's size learnt from the
workers' messages, a resize recorded as a restart, the worker count over time in the report,
and the step budget over every group size a worker range allows."""

from __future__ import annotations

import time

import pytest

from slimray.core.records import RestartReason, WindowReport
from slimray.core.spec import parse_spec
from slimray.runtime.progress import STARTED, WINDOW, StepMerger, WorkerMessage
from slimray.runtime.pump import ProgressPump
from slimray.runtime.report import Timeline, build_report
from slimray.runtime.trainer import budget_steps


def _window(rank, step, world, attempt=1):
    report = WindowReport(rank=rank, step=step, time=100.0 + step, pid=1, samples_per_second=10.0,
                          params=10, flops=100, world=world)  # fmt: skip
    return WorkerMessage(WINDOW, rank, attempt, step, 100.0 + step, report)


def _started(attempt, world, per_worker, resumed=None, when=100.0):
    batch = {"workers": world, "per_worker_batch": per_worker, "global_batch": world * per_worker}
    payload = {"resumed_from": resumed, "pid": 1, "warnings": [], "batch": batch}
    return WorkerMessage(STARTED, 0, attempt, 0, when, payload)


def test_a_step_is_joined_over_its_own_groups_size():
    """The merger was built for one world; a smaller group's steps must still complete."""
    merger = StepMerger(world=3)
    (joined,) = list(merger.add(_window(0, 10, world=1, attempt=2)))
    assert [w.rank for w in joined] == [0]
    assert list(merger.add(_window(0, 20, world=2, attempt=3))) == []
    assert len(next(iter(merger.add(_window(1, 20, world=2, attempt=3))))) == 2


def test_a_resize_is_a_restart_and_the_report_shows_the_worker_count_over_time():
    events = []
    pump = ProgressPump(3, 100, lambda kind, data: events.append((kind, data)), Timeline(start_time=100.0))
    pump.handle(_started(1, 2, 32))
    pump.handle(_window(0, 10, 2))
    pump.handle(_window(1, 10, 2))
    pump.handle(_started(2, 3, 21, resumed=10, when=130.0))  # Ray's elastic policy grew the group
    for rank in range(3):
        pump.handle(_window(rank, 20, 3, attempt=2))
    pump.restart(RestartReason.WORKER_FAILED, "rank 2: RayActorError", 140.0)  # a node lost
    pump.handle(_started(3, 2, 32, resumed=20, when=150.0))
    for rank in range(2):
        pump.handle(_window(rank, 30, 2, attempt=3))
    report = build_report(pump.timeline, job="j")
    assert [(r.reason, r.cause, r.step, r.elapsed_seconds) for r in report.restarts] == [
        (RestartReason.RESIZED, "2 \u2192 3 workers", 10, 30.0),
        (RestartReason.WORKER_FAILED, "rank 2: RayActorError (3 \u2192 2 workers)", 20, 40.0),
    ]
    groups = [(g.step, g.workers, g.per_worker_batch, g.global_batch, g.elapsed_seconds)
              for g in report.worker_groups]  # fmt: skip
    assert groups == [(0, 2, 32, 64, 0.0), (10, 3, 21, 63, 30.0), (20, 2, 32, 64, 50.0)]
    assert [(e.step, e.workers) for e in report.timeline] == [(10, 2), (20, 3), (30, 2)]
    assert [data["workers"] for kind, data in events if kind == "report"] == [2, 3, 2]


def test_only_the_restart_that_brought_a_resized_group_names_the_resize():
    """A lost node: its worker fails, then the group Ray sized on the dead node is not placed;
    the second try brings the smaller group."""
    pump = ProgressPump(2, 100, lambda kind, data: None, Timeline(start_time=100.0))
    pump.handle(_started(1, 2, 8))
    pump.restart(RestartReason.WORKER_FAILED, "rank 1: ActorDiedError", 110.0)
    pump.restart(RestartReason.STARTUP_FAILED, "the group could not be placed in time, sized again", 140.0)
    pump.handle(_started(2, 1, 16, resumed=10, when=150.0))
    causes = [r.cause for r in pump.timeline.restarts]
    assert causes == ["rank 1: ActorDiedError",
                      "the group could not be placed in time, sized again (2 \u2192 1 workers)"]  # fmt: skip


def _job(num_workers, batch_size, **train):
    return parse_spec(
        {
            "model": {"source": "mlp"},
            "data": {"source": "digits"},
            "train": {"batch_size": batch_size, **train},
            "scaling": {"num_workers": num_workers},
        }
    )


def test_the_step_budget_counts_an_epoch_at_min_workers_and_checks_every_size():
    budget = budget_steps(_job({"min": 2, "max": 4}, 32, epochs=2), 1000)
    assert (budget.steps_per_epoch, budget.total_steps) == (15, 30)  # (1000 // 2) // 32
    assert budget_steps(_job(2, 32, epochs=2), 1000) == budget  # a count at min: the same
    with pytest.raises(ValueError, match=r"198 \(99 per worker at 2 workers\) exceeds the 197"):
        budget_steps(_job({"min": 2, "max": 3}, 99, steps=5), 197)


@pytest.mark.slow  # ~60 s here: an embedded Ray and a driver
def test_a_range_whose_min_never_fits_fails_after_the_start_timeout_saying_why(ray_local, tmp_path):
    """Ray's elastic policy waits for `min` workers without end (its start-up timeout is for a
    group being placed, and none is); slimray's deadline fails the job, saying how many fit."""
    from slimray.runtime.trainer import run_job

    spec = parse_spec({"model": {"source": "mlp", "kwargs": {"hidden1": 8, "hidden2": 8}},
                       "data": {"source": "digits"}, "train": {"steps": 5, "batch_size": 8},
                       "scaling": {"num_workers": {"min": 2, "max": 3}, "cpus_per_worker": 3,
                                   "start_timeout_seconds": 5},
                       "output": {"dir": str(tmp_path / "run")}})  # fmt: skip
    began = time.perf_counter()
    result = run_job(spec)
    assert result.state == "failed" and time.perf_counter() - began < 120
    assert "room for 1 workers, fewer than scaling.num_workers min (2), for 5 s" in result.error, result.error
    assert "scaling.start_timeout_seconds" in result.error
