"""The service's rules for a driver's events: which event a job in which state accepts, and
what each one changes in the store. No HTTP here: routes call `apply_event`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from slimray.core.jobstate import JobState
from slimray.core.records import Retain, retained
from slimray.core.spec import JobSpec
from slimray.service.api.schemas import UNDONE_EVENTS, EndIn, ReportIn, StartIn, StartupIn, WorkerErrorIn
from slimray.service.store import Job, Store


class EventRefused(ValueError):
    """An event the job's state does not allow (the route answers 409 with this message)."""


class EventLimitReached(ValueError):
    """A prune event at a new step for a job that has all the events it may store (a 422)."""

    field = ("data", "event", "step")  # in the request body


EVENT_SLACK = 8  # prune events a job may store beyond its schedule's (a driver newer than the service)


def event_limit(spec: dict[str, Any]) -> int:
    """The prune events a job may store: its schedule's (each with its accuracy budget's retries)
    plus EVENT_SLACK (a spec no longer valid under this version's rules: the slack only)."""
    try:
        prune = JobSpec.model_validate(spec).prune
    except ValidationError:
        return EVENT_SLACK
    planned = 0 if prune is None else prune.schedule.event_count()
    if prune is not None and prune.max_accuracy_drop is not None:  # each may be undone and retried
        planned *= 1 + prune.max_retries
    return planned + EVENT_SLACK


def _check(job: Job, kind: str) -> None:
    """Only a job Ray accepted has a driver: its token was handed over in that submission."""
    if job.submitted_at is None:
        raise EventRefused(f"job {job.id} was never handed to Ray: no driver may report {kind!r} for it")
    if job.state.is_terminal:
        raise EventRefused(f"job {job.id} is {job.state}: its {kind!r} event changes nothing")


def _running(store: Store, job: Job, kind: str) -> None:
    if job.state == JobState.QUEUED:
        store.transition(job.id, JobState.RUNNING, reason=f"driver {kind}")


def _start(store: Store, job: Job, data: StartIn) -> None:
    _running(store, job, "start")
    store.update_progress(job.id, {"step": 0, "total_steps": data.total_steps}, job.metrics)


def _startup(store: Store, job: Job, data: StartupIn) -> None:
    """The start-up's parts join the job's metrics (`slimray_startup_seconds`)."""
    _running(store, job, "startup")
    store.update_progress(
        job.id, job.progress, {**job.metrics, "startup": data.model_dump(exclude_none=True)}
    )


def kept_metrics(metrics: dict[str, Any], report: ReportIn, most_undone: int = EVENT_SLACK) -> dict[str, Any]:
    """A job's metrics after a report: each window metric kept by its `records.Retain` rule, and
    the step of an event the accuracy budget undid (at most `most_undone`, the newest)."""
    kept = dict(metrics)
    for name, rule in retained().items():
        value = getattr(report, name)
        if rule is Retain.LATEST or value is not None:
            kept[name] = value
    if report.rollback is not None:
        known = [s for s in metrics.get(UNDONE_EVENTS, []) if isinstance(s, int)]
        kept[UNDONE_EVENTS] = sorted({*known, report.rollback.event_step})[-most_undone:]
    return kept


def _report(store: Store, job: Job, data: ReportIn) -> None:
    _running(store, job, "report")
    progress = {"step": data.step, "total_steps": data.total_steps}
    event = data.stored_event()
    # the cap validates the job's spec: only for a report that stores an event or an undone step
    limit = event_limit(job.spec) if event is not None or data.rollback is not None else EVENT_SLACK
    store.update_progress(job.id, progress, kept_metrics(job.metrics, data, limit))
    if event is None:
        return
    if not store.add_prune_event(job.id, data.event.step, event, limit):
        raise EventLimitReached(
            f"job {job.id} has its {limit} prune events (its schedule's plus {EVENT_SLACK}): "
            f"a new step is refused (a stored step may be reported again). Received: step={data.event.step}"
        )


def _worker_error(store: Store, job: Job, data: WorkerErrorIn) -> None:
    store.set_error(job.id, f"worker error (Ray Train may restart the group): {data.model_dump()}")


def stored_report(report: dict[str, Any]) -> dict[str, Any]:
    """What the store keeps of a report: all but the per-window timeline (in the run's
    report.json), so a job's row stays small."""
    return {k: v for k, v in report.items() if k != "timeline"}


def _end(store: Store, job: Job, data: EndIn) -> None:
    store.finish(job.id, data.state, stored_report(data.model_dump()), reason="driver end", error=data.error)


_HANDLERS: dict[str, tuple[type[BaseModel], Callable[[Store, Job, Any], None]]] = {
    "start": (StartIn, _start),
    "startup": (StartupIn, _startup),
    "report": (ReportIn, _report),
    "worker_error": (WorkerErrorIn, _worker_error),
    "end": (EndIn, _end),
}
EVENT_DATA: dict[str, type[BaseModel]] = {kind: model for kind, (model, _) in _HANDLERS.items()}


def apply_event(store: Store, job_id: str, kind: str, data: dict[str, Any]) -> None:
    """Validate `data` for `kind` (pydantic ValidationError), check the job's state
    (EventRefused, UnknownJob) and apply it."""
    model, handler = _HANDLERS[kind]
    parsed = model.model_validate(data)
    job = store.get(job_id)
    _check(job, kind)
    handler(store, job, parsed)
