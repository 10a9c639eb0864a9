"""/v1/jobs: submit, list, inspect, cancel, logs; plus the driver's event callback."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse
from pydantic import ValidationError

from slimray.api.deps import ExecutorDep, ReadAccess, SettingsDep, StoreDep, WriteAccess
from slimray.api.policy import enforce
from slimray.api.schemas import EVENT_DATA, DriverEvent, JobCreate, JobCreated, JobPublic, JobsPublic
from slimray.executor import RayUnavailable
from slimray.jobstate import InvalidTransition, JobState

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

_REPORT_METRICS = ("samples_per_second", "throughput_gain", "params", "flops", "sparsity", "loss",
                   "accuracy", "step_time", "gradient_allreduce_bytes_per_step")  # fmt: skip


@router.post("", status_code=status.HTTP_201_CREATED, response_model=JobCreated, dependencies=[WriteAccess])
def create_job(spec: JobCreate, request: Request, settings: SettingsDep, store: StoreDep) -> JobCreated:
    """Validate and store a job spec; it is handed to Ray right away (or when Ray is back)."""
    job_id = uuid.uuid4().hex[:12]
    effective = enforce(spec, settings, job_id)
    job = store.create(spec.name, effective.model_dump(mode="json"), job_id=job_id)
    request.app.state.reconciler.poke()
    return JobCreated(id=job.id, state=job.state)


@router.get("", response_model=JobsPublic, dependencies=[ReadAccess])
def list_jobs(
    store: StoreDep,
    state: JobState | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> JobsPublic:
    jobs, total = store.list(state, limit, offset)
    return JobsPublic(jobs=[JobPublic.of(j) for j in jobs], total=total, limit=limit, offset=offset)


@router.get("/{job_id}", response_model=JobPublic, dependencies=[ReadAccess])
def get_job(job_id: str, store: StoreDep) -> JobPublic:
    return JobPublic.of(store.get(job_id))


@router.delete("/{job_id}", response_model=JobPublic, dependencies=[WriteAccess])
def cancel_job(job_id: str, store: StoreDep, executor: ExecutorDep) -> JobPublic:
    job = store.get(job_id)
    if job.state.is_terminal:
        raise HTTPException(status.HTTP_409_CONFLICT, f"job {job_id} is already {job.state}")
    if job.ray_job_id:
        try:
            executor.stop(job.ray_job_id)
        except RayUnavailable as err:
            raise HTTPException(status.HTTP_409_CONFLICT, f"cannot stop the job now: {err}") from err
        except LookupError:
            pass  # Ray forgot it: nothing left to stop
    store.transition(job_id, JobState.CANCELLED, reason="cancelled by request")
    return JobPublic.of(store.get(job_id))


@router.get("/{job_id}/logs", response_class=PlainTextResponse, dependencies=[ReadAccess])
def job_logs(job_id: str, store: StoreDep, executor: ExecutorDep) -> str:
    job = store.get(job_id)
    if not job.ray_job_id:
        return ""
    try:
        return executor.logs(job.ray_job_id)
    except RayUnavailable as err:
        raise HTTPException(status.HTTP_409_CONFLICT, f"logs unavailable: {err}") from err
    except LookupError:
        return ""


@router.post("/{job_id}/events", status_code=status.HTTP_202_ACCEPTED, dependencies=[WriteAccess])
def driver_event(job_id: str, event: DriverEvent, store: StoreDep) -> dict[str, str]:
    """Progress from the job's driver: the store, and so /metrics, follow a running job."""
    job = store.get(job_id)
    try:
        parsed = EVENT_DATA[event.kind].model_validate(event.data)
    except ValidationError as err:
        raise RequestValidationError(
            [{**e, "loc": ("body", "data", *e["loc"])} for e in err.errors()]
        ) from err
    data = parsed.model_dump()
    try:
        if event.kind in ("start", "report") and job.state == JobState.QUEUED:
            store.transition(job_id, JobState.RUNNING, reason=f"driver {event.kind}")
        if event.kind == "start":
            store.update_progress(job_id, {"step": 0, "total_steps": data.get("total_steps")}, job.metrics)
        elif event.kind == "report":
            metrics = {**job.metrics, **{k: data.get(k) for k in _REPORT_METRICS}}
            if data.get("val_accuracy") is not None:
                metrics["val_accuracy"] = data["val_accuracy"]
            progress = {"step": data.get("step"), "total_steps": data.get("total_steps")}
            store.update_progress(job_id, progress, metrics)
            if data.get("event") is not None:
                store.add_prune_event(job_id, data["event"])
        elif event.kind == "worker_error":
            store.set_error(job_id, f"worker error (Ray Train may restart the group): {data}")
        elif event.kind == "end":
            store.set_report(job_id, {k: v for k, v in data.items() if k != "timeline"})
            final = JobState.SUCCEEDED if data.get("state") == "succeeded" else JobState.FAILED
            store.transition(job_id, final, reason="driver end", error=data.get("error"))
    except InvalidTransition as err:
        raise HTTPException(status.HTTP_409_CONFLICT, str(err)) from err
    return {"status": "accepted"}
