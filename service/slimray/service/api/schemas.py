"""Request and response bodies of the job API."""

from __future__ import annotations

from functools import cache
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model, field_validator
from pydantic.fields import FieldInfo

from slimray.core.jobstate import JobState
from slimray.core.jsonsafe import deeper_than
from slimray.core.records import ProgressReport, PruneEvent, Record
from slimray.core.spec import JobSpec
from slimray.core.startup import StartupBreakdown
from slimray.service.store import Job

JobCreate = JobSpec


class JobSummary(BaseModel):
    """A job as listed: state, progress, metrics and how many prune events it has (their bodies,
    the transitions and the report only in `JobPublic`: a list page stays small, issue 23 M3)."""

    id: str
    name: str
    state: JobState
    spec: dict[str, Any]
    progress: dict[str, Any]
    metrics: dict[str, Any]
    prune_event_count: int = 0
    created_at: float
    updated_at: float
    error: str | None = None
    ray_job_id: str | None = None
    submitted_at: float | None = None
    stop_pending: bool = False

    @classmethod
    def of(cls, job: Job):
        return cls(**{k: getattr(job, k) for k in cls.model_fields})


class JobPublic(JobSummary):
    """One job whole: its prune events, state transitions and the report its driver published."""

    prune_events: list[dict[str, Any]]
    transitions: list[dict[str, Any]] = Field(default_factory=list)
    report: dict[str, Any] | None = None


class JobsPublic(BaseModel):
    jobs: list[JobSummary]
    total: int
    limit: int
    offset: int


class JobCreated(BaseModel):
    id: str
    state: JobState


MAX_EVENT_NESTING = 32  # a driver's records nest a few levels; JSON responses allow ~250


def _shallow(data: dict[str, Any]) -> dict[str, Any]:
    """Event data nested at most MAX_EVENT_NESTING deep: deeper data was stored but could not be
    serialized back (every GET of the job answered 500, issue 23 L2)."""
    if deeper_than(data, MAX_EVENT_NESTING):
        raise ValueError(f"nested more than {MAX_EVENT_NESTING} levels deep")
    return data


class DriverEvent(BaseModel):
    """What a running job's driver posts back: start, startup, report, worker_error or end."""

    kind: Literal["start", "startup", "report", "worker_error", "end"]
    data: Annotated[dict[str, Any], AfterValidator(_shallow)] = Field(default_factory=dict)


STEP_MAX = 2**53  # steps beyond this are not a real job (and would overflow SQLite's integers)
_LENIENT = ConfigDict(extra="allow", populate_by_name=True, serialize_by_alias=True)


def _lenient_type(annotation: Any) -> Any:
    """`annotation` with every record in it made lenient (`list[X] | None` included)."""
    if isinstance(annotation, type) and issubclass(annotation, Record):
        return lenient(annotation)
    args = get_args(annotation)
    if not args:
        return annotation
    inner = tuple(_lenient_type(arg) for arg in args)
    if isinstance(annotation, UnionType) or get_origin(annotation) is Union:
        return Union[inner]  # noqa: UP007 (a tuple of members)
    return get_origin(annotation)[inner if len(inner) > 1 else inner[0]]


def _optional(info: FieldInfo) -> Any:
    """The field's type, lenient and nullable, with its constraints (`ge=0`: `Ge(0)`)."""
    annotation = _lenient_type(info.annotation) | None
    return Annotated[annotation, *info.metadata] if info.metadata else annotation


@cache
def lenient(record: type[Record]) -> type[BaseModel]:
    """`record` as a driver may post it: each field optional (a driver reports what it has) and
    checked; unknown fields kept, since a driver newer than the service may send fields it lacks."""
    fields = {name: (_optional(info), Field(None, alias=info.alias))
              for name, info in record.model_fields.items()}  # fmt: skip
    return create_model(f"{record.__name__}In", __config__=_LENIENT, __doc__=record.__doc__, **fields)


class PruneEventIn(lenient(PruneEvent)):
    """A prune event as the driver reports it (`records.PruneEvent`); only its step is required."""

    step: int = Field(ge=0, le=STEP_MAX)


class StartIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    total_steps: int | None = Field(None, ge=0, le=STEP_MAX)


class StartupIn(lenient(StartupBreakdown)):
    """The job's start-up by part (`startup.StartupBreakdown`), once its first worker group runs."""


UNDONE_EVENTS = "undone_event_steps"  # a job's metrics: the steps of the events its accuracy budget undid
MAX_EVENT_BYTES = 64 * 1024  # a real event is a few KB (its kept-whole layers, a digest a rank)


class ReportIn(lenient(ProgressReport)):
    """One merged report (`records.ProgressReport`): progress, metrics and maybe a prune event."""

    step: int | None = Field(None, ge=0, le=STEP_MAX)
    total_steps: int | None = Field(None, ge=0, le=STEP_MAX)
    event: PruneEventIn | None = None

    @field_validator("event")
    @classmethod
    def _small(cls, event: PruneEventIn | None) -> PruneEventIn | None:
        """A stored event's unknown fields may not grow it without bound (issue 23 M3)."""
        size = 0 if event is None else len(event.model_dump_json(exclude_unset=True))
        if size > MAX_EVENT_BYTES:
            raise ValueError(f"a prune event is at most {MAX_EVENT_BYTES} bytes of JSON. Received: {size}")
        return event

    def stored_event(self) -> dict[str, Any] | None:
        """The event as the store keeps it: what the driver sent, checked (wire names)."""
        return None if self.event is None else self.event.model_dump(exclude_unset=True)


DRIVER_END_STATES = (JobState.SUCCEEDED, JobState.FAILED)  # how a driver may end its job


class EndIn(BaseModel):
    """A driver's last word: how its job ended, the error if it failed, and the run's report."""

    model_config = ConfigDict(extra="allow")
    state: JobState
    error: str | None = None

    @field_validator("state")
    @classmethod
    def _an_end_state(cls, state: JobState) -> JobState:
        if state not in DRIVER_END_STATES:
            ends = " or ".join(repr(s.value) for s in DRIVER_END_STATES)
            raise ValueError(f"a driver ends its job {ends}. Received: {state.value!r}")
        return state


class WorkerErrorIn(BaseModel):
    """Exceptions by worker rank, as text."""

    model_config = ConfigDict(extra="allow")


class EventTokenOut(BaseModel):
    """What a driver's claim is exchanged for: the bearer token for its job's events."""

    event_token: str


class ErrorOut(BaseModel):
    """Every refusal other than a validation error: what was wrong, in words."""

    detail: str


class LogsOut(BaseModel):
    """The end of a job's driver log."""

    logs: str
    truncated: bool = Field(False, description="True when only the last max_log_bytes are shown.")
