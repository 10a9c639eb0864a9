"""The driver's progress pump: drains the workers' messages while the trainer runs, merges each
step's windows into the timeline and turns every merged step into a "report" event."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from slimray.core.records import ProgressReport, Restart, RestartReason, WindowReport, WorkerGroup
from slimray.core.startup import WorkerMarks
from slimray.runtime.progress import (
    ERROR,
    FINISHED,
    RESTART,
    STARTED,
    WINDOW,
    ProgressChannel,
    StepMerger,
    WorkerMessage,
)
from slimray.runtime.report import Timeline

# a driver event's receiver (the CLI's progress, the service poster): its kind and its JSON data
EventSink = Callable[[str, dict[str, Any]], None]
POLL_SECONDS = 0.25


def _ignore(record: ProgressReport | Restart) -> None:
    """The default `on_report` and `on_restart`: nothing beside the events observes them."""


def _nothing() -> None:
    """The default `on_started`."""


@dataclass
class ProgressPump:
    """Turns worker messages into timeline entries and live events while the trainer runs;
    `on_report` sees each typed report before it is emitted (the Ray metrics)."""

    world: int
    total_steps: int
    emit: EventSink
    timeline: Timeline
    on_report: Callable[[ProgressReport], None] = _ignore
    on_restart: Callable[[Restart], None] = _ignore
    merger: StepMerger = field(init=False)
    loop_started_at: float | None = None  # rank 0's first loop start (wall clock)
    loop_finished_at: float | None = None
    worker_phases: dict[str, float] = field(default_factory=dict)
    startup_marks: WorkerMarks | None = None  # the start-up timestamps of that rank 0
    first_trace: float | None = None  # the finishing group's rank 0: seconds tracing its first model
    on_started: Callable[[], None] = _nothing  # once: the first group's rank 0 entered its loop

    def __post_init__(self) -> None:
        self.merger = StepMerger(self.world)

    def handle(self, message: WorkerMessage) -> None:
        if message.kind == WINDOW:
            for windows in self.merger.add(message):
                self.report(windows)
        elif message.kind == ERROR:
            self.emit("worker_error", message.payload)
        elif message.kind == RESTART:
            self.restart(RestartReason(message.payload["reason"]), message.payload["cause"], message.time)
        elif message.rank == 0 and message.kind == STARTED:
            self.started(message)
        elif message.rank == 0 and message.kind == FINISHED:
            self.loop_finished_at = message.time
            self.worker_phases = message.payload["phases"]
            self.first_trace = message.payload.get("first_trace")

    def restart(self, reason: RestartReason, cause: str, when: float | None) -> None:
        """A worker group is being replaced (or a new driver resumes the run): recorded in the
        timeline and counted (`on_restart`)."""
        self.on_restart(self.timeline.restart(reason, cause, when))

    def started(self, message: WorkerMessage) -> None:
        """Rank 0 of a worker group entered its loop: the first one times the job's start-up,
        every one tells the timeline the step it resumed from, its size and batch."""
        payload = message.payload
        if self.loop_started_at is None:
            self.loop_started_at = message.time
            marks = payload.get("marks")
            self.startup_marks = WorkerMarks.model_validate(marks) if marks else None
            self.on_started()
        warnings, batch = payload.get("warnings", []), payload.get("batch")
        when = self.timeline.elapsed(message.time)
        group = WorkerGroup(**batch, elapsed_seconds=when) if batch else None
        resumed_from = payload.get("resumed_from")
        unreported = self.timeline.group_started(message.attempt, resumed_from, warnings, group)
        if unreported is not None:
            self.on_restart(unreported)

    def report(self, windows: list[WindowReport]) -> ProgressReport:
        """One merged step: into the timeline, then out as a "report" event."""
        entry, event = self.timeline.add(windows)
        rollback = windows[0].rollback
        report = ProgressReport.of(entry, total_steps=self.total_steps, event=event, rollback=rollback)
        self.on_report(report)
        self.emit("report", report.model_dump())
        return report

    def pump(self, channel: ProgressChannel, running: threading.Thread) -> None:
        while running.is_alive():
            running.join(POLL_SECONDS)
            for message in channel.poll(POLL_SECONDS):
                self.handle(message)
        for message in channel.drain():  # what arrived after the last poll
            self.handle(message)
