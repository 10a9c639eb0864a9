"""Submitting and cancelling jobs, as the service's rules say (no HTTP here): a job gets its id
here, is stored queued and handed to Ray by the reconciler; a cancel is recorded now, Ray told after."""

from __future__ import annotations

from slimray.core.jobstate import InvalidTransition, new_job_id
from slimray.core.spec import JobSpec
from slimray.service.api.context import ServiceContext
from slimray.service.api.policy import enforce
from slimray.service.store import Job


def submit_job(context: ServiceContext, spec: JobSpec) -> Job:
    """Check the backend (BackendUnavailableError) and the policy (PolicyError), against what the
    reconciler last saw of the Ray cluster; store the effective spec queued and wake the reconciler."""
    context.backend_checks.enforce(spec)
    job_id = new_job_id()
    effective = enforce(spec, context.settings, job_id, context.reconciler.probe.nodes)
    job = context.store.create(spec.name, effective.model_dump(mode="json"), job_id=job_id)
    context.reconciler.poke()
    return job


def cancel_job(context: ServiceContext, job_id: str) -> Job:
    """Cancelled now (InvalidTransition if already finished, UnknownJob if never); a Ray driver
    is stopped by the reconciler, which keeps trying until Ray confirms."""
    job = context.store.get(job_id)
    if job.state.is_terminal:
        raise InvalidTransition(f"job {job_id} is already {job.state}")
    job = context.store.cancel(job_id, reason="cancelled by request")
    context.reconciler.poke()
    return job
