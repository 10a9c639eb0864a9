"""Reconciliation: the store follows what Ray says, including jobs Ray has forgotten."""

from __future__ import annotations

from slimray.api.reconcile import reconcile_all
from slimray.executor import RayJobStatus, RayUnavailable
from slimray.jobstate import JobState
from slimray.store import Store


class _Ray:
    """Injects Ray's answers (a lost job, a finished one, an outage)."""

    def __init__(self, statuses, down=False):
        self.statuses, self.down, self.submitted = statuses, down, []

    def submit(self, job_id, spec):
        if self.down:
            raise RayUnavailable("connection refused")
        self.submitted.append(job_id)
        return f"slimray-{job_id}"

    def status(self, ray_job_id):
        if self.down:
            raise RayUnavailable("connection refused")
        return self.statuses[ray_job_id]


def test_reconcile_submits_follows_and_fails_lost_jobs(tmp_path):
    store = Store(tmp_path / "j.db")
    queued = store.create("q", {})
    lost = store.create("l", {})
    done = store.create("d", {})
    for job in (lost, done):
        store.set_ray_job(job.id, f"slimray-{job.id}")
        store.transition(job.id, JobState.RUNNING)
    ray = _Ray({f"slimray-{lost.id}": RayJobStatus(None, "no record"),
                f"slimray-{done.id}": RayJobStatus(JobState.SUCCEEDED)})  # fmt: skip
    reconcile_all(store, ray)
    assert ray.submitted == [queued.id] and store.get(queued.id).ray_job_id == f"slimray-{queued.id}"
    assert store.get(lost.id).state == JobState.FAILED
    assert "no record" in store.get(lost.id).error
    assert store.get(done.id).state == JobState.SUCCEEDED


def test_an_outage_changes_nothing_but_the_reason(tmp_path):
    store = Store(tmp_path / "j.db")
    job = store.create("q", {})
    reconcile_all(store, _Ray({}, down=True))
    got = store.get(job.id)
    assert got.state == JobState.QUEUED and "waiting for Ray" in got.error
