"""Request and response bodies of the job API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from slimray.core.jobstate import JobState
from slimray.core.spec import JobSpec
from slimray.service.store import Job

JobCreate = JobSpec


class JobSummary(BaseModel):
    """A job as listed: state, progress and metrics (the full report only in `JobPublic`)."""

    id: str
    name: str
    state: JobState
    spec: dict[str, Any]
    progress: dict[str, Any]
    metrics: dict[str, Any]
    prune_events: list[dict[str, Any]]
    created_at: float
    updated_at: float
    error: str | None = None
    ray_job_id: str | None = None
    submitted_at: float | None = None
    stop_pending: bool = False
    transitions: list[dict[str, Any]] = Field(default_factory=list)

    @classmethod
    def of(cls, job: Job):
        return cls(**{k: getattr(job, k) for k in cls.model_fields})


class JobPublic(JobSummary):
    """One job, with the report its driver published (report.json of its run directory)."""

    report: dict[str, Any] | None = None


class JobsPublic(BaseModel):
    jobs: list[JobSummary]
    total: int
    limit: int
    offset: int


class JobCreated(BaseModel):
    id: str
    state: JobState


class DriverEvent(BaseModel):
    """What a running job's driver posts back: start, report, worker_error or end."""

    kind: Literal["start", "report", "worker_error", "end"]
    data: dict[str, Any] = Field(default_factory=dict)


STEP_MAX = 2**53  # steps beyond this are not a real job (and would overflow SQLite's integers)


class PruneEventIn(BaseModel):
    """A prune event as the driver reports it (extra fields are kept)."""

    model_config = ConfigDict(extra="allow")
    step: int = Field(ge=0, le=STEP_MAX)
    durations: dict[str, float | None] = Field(default_factory=dict)
    allreduce_bytes: float = Field(0, ge=0)


class StartIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    total_steps: int | None = Field(None, ge=0, le=STEP_MAX)


class ReportIn(BaseModel):
    """One merged report: progress, metrics and possibly a prune event."""

    model_config = ConfigDict(extra="allow")
    step: int | None = Field(None, ge=0, le=STEP_MAX)
    total_steps: int | None = Field(None, ge=0, le=STEP_MAX)
    samples_per_second: float | None = None
    throughput_gain: float | None = None
    params: float | None = None
    flops: float | None = None
    sparsity: float | None = None
    loss: float | None = None
    accuracy: float | None = None
    step_time: float | None = None
    val_accuracy: float | None = None
    event: PruneEventIn | None = None


class EndIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    state: Literal["succeeded", "failed"]
    error: str | None = None


class WorkerErrorIn(BaseModel):
    """Exceptions by worker rank, as text."""

    model_config = ConfigDict(extra="allow")


class ErrorOut(BaseModel):
    """Every refusal other than a validation error: what was wrong, in words."""

    detail: str


class LogsOut(BaseModel):
    """The end of a job's driver log."""

    logs: str
    truncated: bool = Field(False, description="True when only the last max_log_bytes are shown.")
