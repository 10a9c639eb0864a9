"""Reconciliation rules with Ray's answers injected (a lost job, an outage, a job Ray never
starts): the store follows Ray, cancels win, and nothing waits forever. The same rules against
a real Ray job server are in test_ray_service.py."""

from __future__ import annotations

import time

import pytest
import yaml

from slimray.core.jobstate import JobState
from slimray.service.api.context import launcher
from slimray.service.api.reconcile import WarmedFor, reconcile_all
from slimray.service.executor import DriverLaunch, RayJobStatus, RayUnavailable, lost_cause, submission_id
from slimray.service.settings import get_settings
from slimray.service.store import Store


class _Ray:
    """Injects Ray's answers; records what was asked of it."""

    def __init__(self, statuses=None, down=False):
        self.statuses, self.down = statuses or {}, down
        self.submitted, self.stopped = [], []

    def _check(self):
        if self.down:
            raise RayUnavailable("connection refused")

    def submit(self, launch):
        self._check()
        self.submitted.append(launch.job_id)
        return launch.submission_id

    def status(self, ray_job_id):
        self._check()
        return self.statuses.get(ray_job_id, RayJobStatus(None, "no record"))

    def stop(self, ray_job_id):
        self._check()
        self.stopped.append(ray_job_id)
        self.statuses[ray_job_id] = RayJobStatus(JobState.CANCELLED)
        return True


def _launch(job):
    return DriverLaunch(job.id, job.spec, "token")


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "j.db")
    yield store
    store.close()


def _running(store, name):
    job = store.create(name, {})
    store.claim_submission(job.id, submission_id(job.id))
    store.mark_submitted(job.id)
    store.transition(job.id, JobState.RUNNING)
    return job


def test_reconcile_submits_follows_and_fails_lost_jobs(store):
    queued, lost, done = store.create("q", {}), _running(store, "l"), _running(store, "d")
    ray = _Ray({submission_id(done.id): RayJobStatus(JobState.SUCCEEDED)})
    reconcile_all(store, ray, _launch)
    assert ray.submitted == [queued.id]
    got = store.get(queued.id)
    assert got.ray_job_id == submission_id(queued.id) and got.submitted_at is not None
    assert store.get(lost.id).state == JobState.FAILED and "no record" in store.get(lost.id).error
    assert store.get(done.id).state == JobState.SUCCEEDED


def test_an_outage_changes_nothing_but_the_reason(store):
    job = store.create("q", {})
    reconcile_all(store, _Ray(down=True), _launch)
    got = store.get(job.id)
    assert got.state == JobState.QUEUED and "waiting for Ray" in got.error and got.submitted_at is None
    ray = _Ray()
    reconcile_all(store, ray, _launch)  # Ray is back: the claimed job is submitted once
    assert ray.submitted == [job.id] and store.get(job.id).submitted_at is not None
    reconcile_all(store, ray, _launch)
    assert ray.submitted == [job.id]


def test_a_cancelled_job_is_stopped_on_ray_until_ray_confirms(store):
    """Regression (item 12): a cancelled job kept running on Ray and was never looked at again."""
    job = _running(store, "c")
    ray_id = submission_id(job.id)
    store.cancel(job.id, reason="user")
    down = _Ray({ray_id: RayJobStatus(JobState.RUNNING)}, down=True)
    reconcile_all(store, down, _launch)
    assert store.get(job.id).stop_pending  # Ray was down: still to do
    ray = _Ray({ray_id: RayJobStatus(JobState.RUNNING)})
    reconcile_all(store, ray, _launch)
    assert ray.stopped == [ray_id] and not store.get(job.id).stop_pending
    assert store.get(job.id).state == JobState.CANCELLED


def test_a_job_cancelled_before_submission_is_never_submitted(store):
    job = store.create("q", {})
    store.cancel(job.id, reason="user")
    ray = _Ray()
    reconcile_all(store, ray, _launch)
    assert ray.submitted == [] and ray.stopped == []


def test_a_job_ray_never_starts_fails_after_the_timeout_with_rays_reason(store):
    """Regression (item 11): a job left PENDING in Ray sat queued forever."""
    job = store.create("q", {})
    ray = _Ray()
    reconcile_all(store, ray, _launch)
    ray.statuses[submission_id(job.id)] = RayJobStatus(JobState.QUEUED, "waiting for resources",
                                                        pending=True)  # fmt: skip
    reconcile_all(store, ray, _launch, schedule_timeout=60)
    assert store.get(job.id).state == JobState.QUEUED
    time.sleep(0.3)
    reconcile_all(store, ray, _launch, schedule_timeout=0.2)
    got = store.get(job.id)
    assert got.state == JobState.FAILED and "did not start the job within" in got.error
    assert "waiting for resources" in got.error and ray.stopped == [submission_id(job.id)]


def test_a_finished_job_whose_end_event_never_came_gets_the_published_report(store, tmp_path):
    """The driver published report.json, then its last event was lost: the report is not."""
    import json

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    published = {"state": "failed", "error": "ValueError: boom", "timeline": [{"step": 1}]}
    (run_dir / "report.json").write_text(json.dumps(published))
    job = store.create("lost-end", {"output": {"dir": str(run_dir)}})
    store.claim_submission(job.id, submission_id(job.id))
    store.mark_submitted(job.id)
    store.transition(job.id, JobState.RUNNING)
    never = store.create("no-report", {"output": {"dir": str(tmp_path / "never")}})
    store.claim_submission(never.id, submission_id(never.id))
    store.mark_submitted(never.id)
    ray = _Ray({submission_id(job.id): RayJobStatus(JobState.FAILED, "exit 1"),
                submission_id(never.id): RayJobStatus(JobState.SUCCEEDED)})  # fmt: skip
    reconcile_all(store, ray, _launch)
    finished = store.get(job.id)
    assert finished.state == JobState.FAILED
    assert finished.report == {"state": "failed", "error": "ValueError: boom"}  # the timeline stays there
    assert finished.error == "ValueError: boom"  # the report's reason, not Ray's exit status
    assert store.get(never.id).state == JobState.SUCCEEDED and store.get(never.id).report is None


def _mnist_spec(max_failures: int) -> dict:
    with open("examples/mnist.yaml") as f:
        spec = yaml.safe_load(f)
    spec["failure"] = {"max_failures": max_failures}
    return spec


launch_for = launcher(get_settings(api_token="admin"))


def test_a_lost_driver_is_resubmitted_up_to_max_failures_then_fails(store):
    """Issue 23 point 6: each lost driver is submitted again (`-r<n>`, resuming) while the spec's
    failure.max_failures allows; the next loss fails the job; each cause is in its history."""
    job = store.create("lost", _mnist_spec(max_failures=1))
    store.claim_submission(job.id, submission_id(job.id))
    store.mark_submitted(job.id)
    store.transition(job.id, JobState.RUNNING)
    lost = RayJobStatus(JobState.FAILED, "Job supervisor actor died", lost="its node was lost")
    ray = _Ray({submission_id(job.id): lost, submission_id(job.id, 1): lost})
    reconcile_all(store, ray, launch_for)
    again = store.get(job.id)
    assert (again.state, again.ray_job_id, again.resubmits) == (JobState.RUNNING, submission_id(job.id, 1), 1)
    assert ray.submitted == [job.id] and again.submitted_at is not None
    assert "driver lost: its node was lost; resubmitted as" in again.transitions[-1]["reason"]
    reconcile_all(store, ray, launch_for)
    assert store.get(job.id).state == JobState.FAILED and ray.submitted == [job.id]


def test_a_driver_that_failed_on_its_own_is_not_resubmitted(store):
    job = store.create("own", _mnist_spec(max_failures=3))
    store.claim_submission(job.id, submission_id(job.id))
    store.mark_submitted(job.id)
    ray = _Ray({submission_id(job.id): RayJobStatus(JobState.FAILED, "exit code 1")})
    reconcile_all(store, ray, launch_for)
    assert store.get(job.id).state == JobState.FAILED and ray.submitted == []


@pytest.mark.parametrize(("info", "cause"), [
    ({"status": "FAILED", "error_type": "JOB_ENTRYPOINT_COMMAND_ERROR", "driver_exit_code": -9}, "SIGKILL"),
    ({"status": "FAILED", "error_type": "JOB_ENTRYPOINT_COMMAND_ERROR", "driver_exit_code": 137}, "SIGKILL"),
    ({"status": "FAILED", "error_type": "JOB_SUPERVISOR_ACTOR_DIED"}, "node was lost"),
    ({"status": "FAILED", "error_type": "JOB_ENTRYPOINT_COMMAND_ERROR", "driver_exit_code": 1}, None),
    ({"status": "FAILED", "error_type": "RUNTIME_ENV_SETUP_FAILURE"}, None),
    ({"status": "STOPPED", "driver_exit_code": -9}, None),
])  # fmt: skip
def test_which_failures_ray_reports_count_as_a_lost_driver(info, cause):
    found = lost_cause(info)
    assert (found is None) if cause is None else (cause in found)


@pytest.mark.parametrize(("last", "now", "again"), [
    (None, WarmedFor("s1", 2), True),  # never warmed
    (WarmedFor("s1", 2), WarmedFor("s1", 2), False),  # the same session: its keeper lives
    (WarmedFor("s1", 2), WarmedFor("s1", 1), False),  # a node fewer: nothing to add
    (WarmedFor("s1", 2), WarmedFor("s1", 3), True),  # a node more: it comes up cold
    (WarmedFor("s1", 3), WarmedFor("s2", 1), True),  # a new session: a new cluster has no keeper
])  # fmt: skip
def test_the_warm_job_is_submitted_for_a_new_session_or_more_nodes(last, now, again):
    assert now.needs_warming_after(last) is again
