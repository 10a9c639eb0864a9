"""The driver-event rules without HTTP: which event a job in which state accepts, and that a
refused event changes nothing (regressions of issue 8, item 3 and the second half of 14)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from slimray.core.jobstate import JobState
from slimray.service.api.events import EventRefused, apply_event
from slimray.service.executor import submission_id
from slimray.service.store import Store


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "jobs.db")
    yield store
    store.close()


def _submitted(store: Store) -> str:
    job = store.create("j", {})
    assert store.claim_submission(job.id, submission_id(job.id))
    store.mark_submitted(job.id)
    return job.id


@pytest.mark.parametrize("claimed", [False, True])  # claimed: submission tried, Ray down
@pytest.mark.parametrize("kind", ["start", "startup", "report", "worker_error", "end"])
def test_a_job_never_handed_to_ray_refuses_every_event(store, kind, claimed):
    job = store.create("j", {})
    if claimed:
        store.claim_submission(job.id, submission_id(job.id))
    data = {"state": "succeeded"} if kind == "end" else {}
    with pytest.raises(EventRefused, match="never handed to Ray"):
        apply_event(store, job.id, kind, data)
    after = store.get(job.id)
    assert after.state == JobState.QUEUED and after.report is None and after.error is None
    assert after.progress == {}


@pytest.mark.parametrize("final", [JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED])
@pytest.mark.parametrize("kind", ["start", "startup", "report", "worker_error", "end"])
def test_a_finished_job_refuses_every_event(store, final, kind):
    job_id = _submitted(store)
    store.transition(job_id, final, reason="test")
    before = store.get(job_id)
    data = {"state": "failed", "error": "late"} if kind == "end" else {"step": 99}
    with pytest.raises(EventRefused, match=f"is {final}"):
        apply_event(store, job_id, kind, data)
    after = store.get(job_id)
    assert (after.state, after.progress, after.report, after.error) == (
        before.state, before.progress, before.report, before.error
    )  # fmt: skip


def test_start_report_end_move_a_submitted_job(store):
    job_id = _submitted(store)
    apply_event(store, job_id, "start", {"total_steps": 10})
    assert store.get(job_id).state == JobState.RUNNING
    apply_event(store, job_id, "report", {"step": 5, "total_steps": 10, "samples_per_second": 3.0,
                                          "event": {"step": 5, "allreduce_bytes": 8}})  # fmt: skip
    job = store.get(job_id)
    assert job.progress == {"step": 5, "total_steps": 10} and len(job.prune_events) == 1
    apply_event(store, job_id, "end", {"state": "succeeded", "timeline": [1, 2], "gain": 2.0})
    job = store.get(job_id)
    assert job.state == JobState.SUCCEEDED and job.report == {"state": "succeeded", "error": None,
                                                              "gain": 2.0}  # fmt: skip


def test_the_startup_parts_join_the_jobs_metrics_and_a_negative_part_is_refused_by_name(store):
    """Issue 27: the driver reports its start-up by part once the first group runs; the service
    keeps it beside the window metrics (`slimray_startup_seconds`), the progress untouched."""
    job_id = _submitted(store)
    apply_event(store, job_id, "report", {"step": 5, "total_steps": 10, "samples_per_second": 3.0})
    apply_event(store, job_id, "startup", {"ray": 2.5, "framework_import": 9.0, "total": 11.5})
    job = store.get(job_id)
    assert job.state == JobState.RUNNING and job.progress == {"step": 5, "total_steps": 10}
    assert job.metrics["startup"] == {"ray": 2.5, "framework_import": 9.0, "total": 11.5}
    assert job.metrics["samples_per_second"] == 3.0
    with pytest.raises(ValidationError, match="group_join"):
        apply_event(store, job_id, "startup", {"group_join": -1.0})


def test_an_end_refused_by_the_state_stores_no_report(store):
    """Regression: `end` stored its report and only then had its state change refused."""
    job_id = _submitted(store)
    store.cancel(job_id, reason="user")
    with pytest.raises(EventRefused):
        apply_event(store, job_id, "end", {"state": "succeeded", "gain": 9.0})
    assert store.get(job_id).report is None


@pytest.mark.parametrize("data", [{"step": 2**63}, {"step": -1}, {"total_steps": 10**30},
                                  {"event": {"step": 2**63}}, {"step": "x"}])  # fmt: skip
def test_out_of_range_steps_are_validation_errors(store, data):
    job_id = _submitted(store)
    with pytest.raises(ValidationError):
        apply_event(store, job_id, "report", data)


@pytest.mark.parametrize("state", ["running", "queued", "cancelled"])
def test_a_driver_may_end_its_job_only_succeeded_or_failed(store, state):
    job_id = _submitted(store)
    with pytest.raises(ValidationError, match=f"ends its job 'succeeded' or 'failed'. Received: '{state}'"):
        apply_event(store, job_id, "end", {"state": state})
    assert store.get(job_id).state == JobState.QUEUED  # nothing changed
