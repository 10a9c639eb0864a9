"""/v1/jobs: submit, list, inspect, cancel, logs; plus the driver's event callback. Each route
only translates HTTP: the rules live in `api.lifecycle` and `api.events`, refusals in `api.errors`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from slimray.core.jobstate import JobState
from slimray.service.api.claims import exchange_claim
from slimray.service.api.deps import (
    ContextDep,
    Credentials,
    DriverAccess,
    ExecutorDep,
    JobId,
    ReadAccess,
    SettingsDep,
    StoreDep,
    WriteAccess,
)
from slimray.service.api.events import apply_event
from slimray.service.api.lifecycle import cancel_job, submit_job
from slimray.service.api.schemas import (
    DriverEvent,
    ErrorOut,
    EventTokenOut,
    JobCreate,
    JobCreated,
    JobPublic,
    JobsPublic,
    JobSummary,
    LogsOut,
)

_REFUSALS: dict[int | str, dict] = {
    401: {"model": ErrorOut, "description": "Missing or invalid bearer token."},
    404: {"model": ErrorOut, "description": "No such job."},
    409: {"model": ErrorOut, "description": "The job's state does not allow this."},
    503: {"model": ErrorOut, "description": "The job store (or Ray, for logs) is unavailable."},
}
router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=_REFUSALS)
MAX_OFFSET = 10**9


@router.post("", status_code=status.HTTP_201_CREATED, response_model=JobCreated, dependencies=[WriteAccess])
def create(spec: JobCreate, context: ContextDep) -> JobCreated:
    """Validate and store a job spec; the reconciler hands it to Ray right away (or when Ray is back)."""
    job = submit_job(context, spec)
    return JobCreated(id=job.id, state=job.state)


@router.get("", response_model=JobsPublic, dependencies=[ReadAccess])
def list_jobs(
    store: StoreDep,
    state: JobState | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> JobsPublic:
    jobs, total = store.list(state, limit, offset)
    return JobsPublic(jobs=[JobSummary.of(j) for j in jobs], total=total, limit=limit, offset=offset)


@router.get("/{job_id}", response_model=JobPublic, dependencies=[ReadAccess])
def get_job(job_id: JobId, store: StoreDep) -> JobPublic:
    return JobPublic.of(store.get(job_id))


@router.delete("/{job_id}", response_model=JobPublic, dependencies=[WriteAccess])
def cancel(job_id: JobId, context: ContextDep) -> JobPublic:
    """Cancelled at once; its Ray driver (if any) is stopped in the background (`stop_pending`)."""
    return JobPublic.of(cancel_job(context, job_id))


@router.get("/{job_id}/logs", response_model=LogsOut, dependencies=[ReadAccess])
def job_logs(job_id: JobId, store: StoreDep, executor: ExecutorDep, settings: SettingsDep) -> LogsOut:
    """The last `max_log_bytes` of the driver's log (RayUnavailable: 503)."""
    job = store.get(job_id)
    if job.submitted_at is None:  # Ray never accepted it: no log anywhere
        return LogsOut(logs="")
    log = executor.logs(job.ray_job_id, settings.max_log_bytes)
    return LogsOut(logs=log.text, truncated=log.truncated)


@router.post("/{job_id}/events", status_code=status.HTTP_202_ACCEPTED, dependencies=[DriverAccess])
def driver_event(job_id: JobId, event: DriverEvent, store: StoreDep) -> dict[str, str]:
    """Progress from the job's driver (authenticated with its job's own token); a job whose
    state refuses the event: EventRefused, 409."""
    try:
        apply_event(store, job_id, event.kind, event.data)
    except ValidationError as err:  # the event's data, checked for its kind: a field of this body
        raise RequestValidationError(
            [{**e, "loc": ("body", "data", *e["loc"])} for e in err.errors()]
        ) from err
    return {"status": "accepted"}


@router.post("/{job_id}/claim", response_model=EventTokenOut)
def claim_event_token(job_id: JobId, store: StoreDep, settings: SettingsDep,
                      credentials: Credentials) -> EventTokenOut:  # fmt: skip
    """The driver's one-time exchange (its claim as bearer token) for its job's event token: Ray's
    job list shows the claim, and a claim is good once (ClaimInvalid 401, ClaimSpent 409)."""
    secret = settings.api_token.get_secret_value() if settings.api_token else None
    given = credentials.credentials if credentials else ""
    return EventTokenOut(event_token=exchange_claim(store, secret, job_id, given))
