"""The one-time exchange of a driver's claim for its job's event token (issue 23 L5), without
HTTP: the claim is only good for the job's current Ray submission and only once; a second use is
refused and written in the job's history, since it means someone else read the claim."""

from __future__ import annotations

from slimray.service.api.credentials import job_event_token, same, submission_claim
from slimray.service.store import Job, Store, UnknownJob


class ClaimInvalid(PermissionError):
    """Not the claim of this job's current submission (a 401)."""


class ClaimSpent(ValueError):
    """The claim was already exchanged (a 409); the attempt is in the job's history."""


def exchange_claim(store: Store, secret: str | None, job_id: str, given: str) -> str:
    """The event token of `job_id` for the claim of its current Ray submission, once (UnknownJob,
    ClaimInvalid, ClaimSpent)."""
    job = _claimed_job(store, secret, job_id, given)
    if not store.spend_claim(job_id, job.ray_job_id):
        store.note(job_id, f"event-token claim of submission {job.ray_job_id} presented again: refused")
        raise ClaimSpent(
            f"the event-token claim of submission {job.ray_job_id} was already exchanged: a claim "
            "is good once (this attempt is in the job's history)"
        )
    return job_event_token(secret, job_id)


def _claimed_job(store: Store, secret: str | None, job_id: str, given: str) -> Job:
    """The job whose current submission `given` is the claim of; a wrong claim and an unknown
    job are refused alike (401 before 404, as on every job route)."""
    try:
        job = store.get(job_id)
    except UnknownJob:
        job = None
    if (
        job is None
        or not secret
        or job.ray_job_id is None
        or not same(given, submission_claim(secret, job.ray_job_id))
    ):
        raise ClaimInvalid(f"not the event-token claim of job {job_id}'s submission")
    return job
