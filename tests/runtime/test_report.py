"""Timeline: throughput phases, gain, per-rank evidence, restarts."""

from __future__ import annotations

import pytest

from slimray.core.records import CostGoal, PruneEvent, RestartReason, Rollback, WindowReport
from slimray.core.spec import parse_spec
from slimray.runtime.report import Timeline, build_report, plot_report, target_outcome, write_report


def _report(step, sps, rank=0, event=None, resumed=None, params=100, pid=1, **fields):
    return WindowReport(step=step, rank=rank, time=100.0 + step, pid=pid, samples_per_second=sps,
                        step_time=0.01, loss=1.0, accuracy=0.5, params=params, flops=10 * params,
                        sparsity=0.0, peak_memory_bytes=1000 + step, event=event,
                        resumed_from=resumed, allreduce_bytes_total=8, **fields)  # fmt: skip


def _event(step, digest="d", sha="s"):
    return PruneEvent(step=step, digest=digest, local_scores_sha=sha, target_sparsity=0.5, sparsity=0.5,
                      groups_pruned=1, channels_before=10, channels_after=5, params_before=100,
                      params_after=50, flops_before=1000, flops_after=500)  # fmt: skip


def test_gain_is_measured_against_the_unpruned_phase_without_warmup():
    t = Timeline()
    t.add([_report(10, 5.0), _report(10, 5.0, rank=1)])  # warm-up window, ignored
    t.add([_report(20, 100.0), _report(20, 100.0, rank=1)])
    t.add([_report(21, 0.0, event=_event(20)), _report(21, 0.0, rank=1, event=_event(20, sha="t"))])
    entry, event = t.add([_report(30, 200.0, params=50), _report(30, 200.0, rank=1, params=50)])
    assert t.dense_throughput == 200.0 and t.final_throughput == 400.0
    assert entry.throughput_gain == pytest.approx(2.0) and event is None
    report = build_report(t, job="j").wire()
    assert report["throughput_gain"] == pytest.approx(2.0)
    assert report["prune_events"][0]["local_scores_sha_by_rank"] == {"0": "s", "1": "t"}
    assert report["peak_memory_bytes_per_worker"] == {"0": 1030, "1": 1030}


def test_restart_drops_the_windows_it_replays():
    t = Timeline()
    t.group_started(1, None, [])
    t.add([_report(10, 100.0)])
    t.add([_report(21, 0.0, event=_event(20))])
    t.add([_report(30, 150.0)])
    t.add([_report(40, 150.0)])
    t.restart(RestartReason.WORKER_FAILED, "rank 1: RayActorError", 140.0)
    t.group_started(2, 21, [])  # restarted from the step-21 checkpoint
    t.add([_report(30, 140.0, resumed=21, pid=7)])
    entry, _ = t.add([_report(40, 140.0, resumed=21, pid=7)])
    assert [r.step for r in t.restarts] == [21] and entry.restarts == 1
    t.restart(RestartReason.WORKER_HUNG, "rank 1 did not answer (hung)", 150.0)
    t.group_started(3, 21, [])  # a second restart, same checkpoint
    t.add([_report(30, 140.0, resumed=21, pid=8)])
    assert [r.step for r in t.restarts] == [21, 21]
    assert [e.step for e in t.entries] == [10, 21, 30]
    assert len(t.events) == 1


def test_a_restart_without_a_checkpoint_is_recorded_and_replays_from_step_0():
    """Regression: a group that restarted from scratch (no checkpoint yet) was recorded nowhere."""
    t = Timeline(start_time=100.0)
    t.group_started(1, None, [])
    t.add([_report(10, 100.0)])
    t.restart(RestartReason.STARTUP_FAILED, "a worker was lost while the group started", 112.0)
    t.restart(RestartReason.WORKER_FAILED, "rank 0: RayActorError", 115.0)  # twice before a group ran
    t.group_started(2, None, [])
    entry, _ = t.add([_report(10, 90.0, pid=9)])
    restarts = [(r.step, r.from_checkpoint, r.elapsed_seconds) for r in t.restarts]
    assert restarts == [(0, False, 12.0), (0, False, 15.0)]
    assert [e.step for e in t.entries] == [10] and entry.restarts == 2
    assert t.group_started(3, 10, ["checkpoint x skipped"]).cause.startswith("a new worker group")
    report = build_report(t, job="j").wire()
    assert report["restarts_from_steps"] == [0, 0, 10] and report["warnings"] == ["checkpoint x skipped"]


def test_report_json_is_strict(tmp_path):
    import json

    t = Timeline()
    t.add([_report(10, 100.0).model_copy(update={"loss": float("nan")})])
    path = write_report(tmp_path, build_report(t, job="j", exported_accuracy=float("nan")))
    data = json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    assert data["exported_accuracy"] is None and data["timeline"][0]["loss"] is None


def test_report_files(tmp_path):
    t = Timeline()
    t.add([_report(10, 100.0)])
    t.add([_report(20, 120.0)])
    report = build_report(t, job="j")
    assert write_report(tmp_path, report).read_text().startswith("{")
    png = plot_report(tmp_path, report)
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_a_dense_phase_of_one_window_still_gives_a_gain():
    # report_every 45 with the first prune event at 45: one dense window (it used to be dropped
    # as warm-up, leaving throughput_gain null)
    t = Timeline()
    t.add([_report(45, 100.0)])
    t.add([_report(46, 0.0, event=_event(45))])
    t.add([_report(90, 250.0, params=50)])
    assert t.dense_throughput == 100.0
    assert build_report(t, job="j").throughput_gain == pytest.approx(2.5)


REPORT_KEYS = ["job", "state", "error", "started_at", "total_steps", "workers", "backend", "spec",
               "exported_accuracy", "exported_params", "dense_samples_per_second",
               "final_samples_per_second", "throughput_gain", "params", "gradient_allreduce_bytes_per_step",
               "flops_per_sample", "final_sparsity", "final_group_sparsity", "final_val_accuracy",
               "peak_memory_bytes_per_worker",
               "restarts_from_steps", "restarts", "worker_groups", "warnings", "weights_sha_by_rank",
               "replicas_identical",
               "prune_events", "timeline", "finished_at", "wall_seconds", "wall_time"]  # fmt: skip


def test_report_json_keeps_its_keys_and_the_events_wire_names(tmp_path):
    import json

    t = Timeline(start_time=100.0)
    t.add([_report(10, 100.0, gradient_allreduce_bytes_per_step=64)])
    t.add([_report(11, 0.0, event=_event(10), weights_sha="w")])
    job = {"job": "j", "state": "succeeded", "error": None, "started_at": "t0", "total_steps": 11,
           "workers": 1, "backend": "tf-collective", "spec": {"name": "j"}, "exported_accuracy": 0.5,
           "exported_params": 50}  # fmt: skip
    report = build_report(t, **job)
    report.finished_at, report.wall_seconds, report.wall_time = "t1", 2.0, {"total_seconds": 2.0}
    data = json.loads(write_report(tmp_path, report).read_text())
    assert list(data) == REPORT_KEYS
    assert data["params"] == {"before": 100, "after": 100} and data["flops_per_sample"]["before"] == 1000
    assert data["gradient_allreduce_bytes_per_step"] == {"before": 64, "after": None}
    [event] = data["prune_events"]
    assert "frozen" in event and "kept_whole" not in event and event["digest_by_rank"] == {"0": "d"}
    assert data["timeline"][1]["elapsed_seconds"] == 11.0 and data["replicas_identical"] is True
    failed = build_report(Timeline(), job="j", state="failed", error="E: x").wire()
    assert "exported_accuracy" not in failed and "finished_at" not in failed  # unset: left out, as before


def _target_job(keep=0.5, **prune):
    schedule = {"kind": "iterative", "start": 10, "end": 20, "every": 10}
    job = {"model": {"source": "seed_cnn"}, "data": {"source": "mnist"}, "train": {"steps": 40}}
    return parse_spec({**job, "prune": {"target": {"flops": keep}, "schedule": schedule, **prune}}).prune


def _goal_event(step, keep, kept):
    goal = CostGoal(metric="flops", keep=keep, kept=kept)
    return _event(step).model_copy(update={"target_sparsity": None, "cost_target": goal})


def test_a_target_within_five_percent_is_reached():
    outcome = target_outcome(_target_job(), [_goal_event(10, 0.75, 0.76), _goal_event(20, 0.5, 0.51)])
    assert (outcome.metric, outcome.target, outcome.kept, outcome.reached, outcome.limited_by) == (
        "flops", 0.5, 0.51, True, None)  # fmt: skip


@pytest.mark.parametrize(
    ("events", "limit"),
    [([(10, 0.75, 0.76)], "the job ran 1 of its 2 prune events"),
     ([(10, 0.75, 0.8), (20, 0.5, 0.7)], "every prunable group is at its floor (min_channels=4, round_to=1)"),
     ([(10, 0.75, 0.7), (20, 0.5, 0.4)], "the smallest removal that fit the budget went 5% past it")],
)  # fmt: skip
def test_a_missed_target_says_what_limited_it(events, limit):
    outcome = target_outcome(_target_job(min_channels=4), [_goal_event(*e) for e in events])
    assert outcome.reached is False and outcome.limited_by.startswith(limit), outcome.limited_by


def test_a_target_missed_because_the_budget_undid_an_event_names_the_budget():
    """Regression: a rolled-back target job was said to be limited by its events or its floor."""
    job = _target_job(max_accuracy_drop=0.01, recovery_steps=5)
    undone = Rollback(event_step=20, step=25, accuracy=0.8, reference=0.9, budget=0.01, level=0.5)
    outcome = target_outcome(job, [_goal_event(10, 0.75, 0.76)], [undone])
    assert outcome.reached is False
    assert outcome.limited_by == (
        "the accuracy budget (prune.max_accuracy_drop=0.01) undid the event of step 20 (at 0.5): "
        "accuracy fell more than the budget below 0.9000; pruning stopped")  # fmt: skip
    retried = undone.model_copy(update={"retry_level": 0.625})
    assert target_outcome(job, [_goal_event(10, 0.75, 0.76)], [retried]).limited_by.endswith(
        "its last retry was at 0.625")  # fmt: skip
    reached = target_outcome(job, [_goal_event(10, 0.75, 0.76), _goal_event(25, 0.5, 0.5)], [undone])
    assert reached.reached is True and reached.limited_by is None


def test_only_a_target_job_has_a_target_in_its_report():
    timeline = Timeline()
    job = {"model": {"source": "seed_cnn"}, "data": {"source": "mnist"}, "train": {"steps": 9}}
    sparsity = parse_spec({**job, "prune": {"schedule": {"kind": "one_shot", "step": 3}}}).prune
    assert "target" not in build_report(timeline, prune=sparsity).wire()
    wire = build_report(timeline, prune=_target_job()).wire()
    assert wire["target"] == {"metric": "flops", "target": 0.5, "kept": None, "reached": False,
                              "limited_by": "the job ran 0 of its 2 prune events"}  # fmt: skip


def test_a_rollback_is_listed_counted_and_its_event_is_not_the_final_models(tmp_path):
    """The accuracy budget: the event undone stays in `prune_events` (it ran), the report lists the
    rollback, the timeline counts it, and what the final model holds comes from the events kept."""
    from slimray.core.records import Rollback

    undone = Rollback(event_step=20, step=30, accuracy=0.4, reference=0.9, budget=0.01, level=0.8,
                      retry_level=0.4)  # fmt: skip
    kept_event = _event(31).model_copy(update={"group_sparsity": {"conv1": 0.4}})
    t = Timeline()
    t.add([_report(10, 100.0)])
    t.add([_report(21, 0.0, event=_event(20).model_copy(update={"group_sparsity": {"conv1": 0.8}}))])
    entry, _ = t.add([_report(30, 100.0, rollback=undone)])
    t.add([_report(32, 0.0, event=kept_event)])
    assert entry.rollbacks == 1 and t.kept_events() == [t.events[1]]
    assert [e.phase for e in t.entries] == [0, 0, 1, 2]  # the steps after the rollback: a new phase
    budget = _target_job(max_accuracy_drop=0.01, recovery_steps=5)
    wire = build_report(t, prune=budget).wire()
    assert [r["step"] for r in wire["rollbacks"]] == [30] and len(wire["prune_events"]) == 2
    assert wire["final_group_sparsity"] == {"conv1": 0.4}
    assert "rollbacks" not in build_report(t, prune=_target_job()).wire()  # no budget, no key
    assert plot_report(tmp_path, build_report(t, prune=budget)).read_bytes()[:4] == b"\x89PNG"


def test_a_group_resumed_from_the_rollbacks_checkpoint_keeps_the_rollback():
    """The checkpoint at a rollback's step holds it: a group resumed from there must not count
    the undone event again (nor lose the rollback, nor count down)."""
    from slimray.core.records import Rollback

    undone = Rollback(event_step=20, step=30, accuracy=0.4, reference=0.9, budget=0.01, level=0.8)
    t = Timeline()
    t.group_started(1, None, [])
    t.add([_report(21, 0.0, event=_event(20))])
    t.add([_report(30, 100.0, rollback=undone)])
    t.add([_report(35, 100.0)])
    t.restart(RestartReason.WORKER_FAILED, "rank 1: RayActorError", 140.0)
    t.group_started(2, 30, [])  # resumed from the rollback step's checkpoint
    entry, _ = t.add([_report(35, 100.0, resumed=30, pid=7)])
    assert t.rollbacks == [undone] and entry.rollbacks == 1 and entry.phase == 2
    assert t.kept_events() == []


def test_an_auto_schedules_mask_checks_are_in_its_report_and_a_resumed_group_redoes_the_later_ones():
    """Only an auto schedule's report has `mask_checks` (rank 0's); a group resumed from step 10
    checks again from there, so the checks it will redo are dropped, not listed twice."""
    from slimray.core.records import MaskCheck

    t = Timeline()
    t.group_started(1, None, [])
    t.add([_report(5, 100.0, mask_checks=[MaskCheck(step=0), MaskCheck(step=5, distance=0.3)]),
           _report(5, 100.0, rank=1, mask_checks=[MaskCheck(step=0)])])  # fmt: skip
    t.add([_report(12, 100.0, mask_checks=[MaskCheck(step=10, distance=0.01)])])
    t.restart(RestartReason.WORKER_FAILED, "rank 1: RayActorError", 140.0)
    t.group_started(2, 10, [])
    settled = MaskCheck(step=10, distance=0.02, start="settled")
    t.add([_report(15, 100.0, resumed=10, pid=7, mask_checks=[settled])])
    job = {"model": {"source": "seed_cnn"}, "data": {"source": "mnist"}, "train": {"steps": 90}}
    auto = parse_spec({**job, "prune": {"schedule": {"kind": "auto", "every": 5}}}).prune
    checks = build_report(t, prune=auto).wire()["mask_checks"]
    assert [(c["step"], c["distance"], c["start"]) for c in checks] == [
        (0, None, None), (5, 0.3, None), (10, 0.02, "settled")]  # fmt: skip
    iterative = parse_spec({**job, "prune": {"schedule": {"kind": "one_shot", "step": 3}}}).prune
    assert "mask_checks" not in build_report(t, prune=iterative).wire()
