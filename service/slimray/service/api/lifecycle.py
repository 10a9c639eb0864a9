"""Submitting and cancelling jobs, as the service's rules say (no HTTP here): a job is stored
queued and the reconciler hands it to Ray; a cancel is recorded at once and Ray told after."""

from __future__ import annotations

from slimray.core.jobstate import InvalidTransition, new_job_id
from slimray.core.spec import JobSpec
from slimray.service.api.policy import enforce
from slimray.service.settings import Settings
from slimray.service.store import Job, Store


def create_job(settings: Settings, store: Store, spec: JobSpec, cluster_nodes: int | None = None) -> Job:
    """Apply the policy (PolicyError) and store the effective spec as a queued job;
    `cluster_nodes` is what the reconciler last saw of the Ray cluster."""
    job_id = new_job_id()
    effective = enforce(spec, settings, job_id, cluster_nodes)
    return store.create(spec.name, effective.model_dump(mode="json"), job_id=job_id)


def cancel_job(store: Store, job_id: str) -> Job:
    """Cancelled now (InvalidTransition if already finished); a Ray driver is stopped by the
    reconciler, which keeps trying until Ray confirms."""
    job = store.get(job_id)
    if job.state.is_terminal:
        raise InvalidTransition(f"job {job_id} is already {job.state}")
    return store.cancel(job_id, reason="cancelled by request")
