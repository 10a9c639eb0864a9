"""The driver's training metrics through Ray's own metrics API (`ray.util.metrics`), so a job
with no service in the loop (`slimray run`, a KubeRay RayJob) reaches Prometheus too: Ray
exports them as `ray_slimray_*` with a `slimray_job` tag on each node's metrics port, and the
PodMonitor (k8s/podmonitor.yaml, the chart's) renames them to the service's `slimray_*` names.
The families are `core.metric_families`'s: one description for the service and for Ray."""

from __future__ import annotations

from typing import Any

from ray.util.metrics import Counter, Gauge, Histogram

from slimray.core.metric_families import (
    DRIVER_FAMILIES,
    GROUP_SPARSITY,
    JOB,
    JOB_INFO,
    PHASES,
    PRUNE_EVENT_DURATION,
    PRUNE_EVENTS,
    PRUNE_KEPT,
    PRUNE_TARGET,
    PRUNE_THRESHOLD,
    RESTARTS,
    ROLLBACKS,
    SCORE_ALLREDUCE_BYTES,
    STARTUP,
    WINDOW_GAUGES,
    Family,
    Kind,
)
from slimray.core.records import ProgressReport, PruneEvent, Restart, Rollback
from slimray.core.spec import DEFAULT_BACKEND
from slimray.core.startup import StartupBreakdown

TAG = "slimray_job"  # Ray's tag for the `job` label (the PodMonitor relabels it back)


def ray_metric(family: Family) -> Any:
    """The Ray metric of one family: same name and help, `job` tagged as `slimray_job`."""
    tags = tuple(TAG if label == JOB else label for label in family.labels)
    if family.kind is Kind.HISTOGRAM:
        return Histogram(family.name, family.help, boundaries=list(family.buckets), tag_keys=tags)
    return (Counter if family.kind is Kind.COUNTER else Gauge)(family.name, family.help, tag_keys=tags)


class RayMetrics:
    """Records each progress report of one job as Ray metrics."""

    def __init__(self, job: str, backend: str = DEFAULT_BACKEND):
        self.tags = {TAG: job}
        self.info_tags = {**self.tags, "backend": backend}
        self.metrics = {family.name: ray_metric(family) for family in DRIVER_FAMILIES}
        self.rollbacks = 0  # counted so far: a restarted group replays its steps, not its rollbacks
        self.applied: dict[int, PruneEvent] = {}  # events in effect by step: the last sets the rule's gauges

    def on_progress_report(self, report: ProgressReport) -> None:
        # the job's info with the other gauges: Ray exports what reports set
        self.metrics[JOB_INFO.name].set(1.0, tags=self.info_tags)
        for family in WINDOW_GAUGES:
            value = getattr(report, family.field)
            if value is not None:
                self.metrics[family.name].set(float(value), tags=self.tags)
        if report.rollbacks > self.rollbacks:
            self.metrics[ROLLBACKS.name].inc(float(report.rollbacks - self.rollbacks), tags=self.tags)
            self.rollbacks = report.rollbacks
        if report.rollback is not None:
            self._undo(report.rollback)
        event = report.event
        if event is None:
            return
        self.applied[event.step] = event
        self.metrics[PRUNE_EVENTS.name].inc(1.0, tags=self.tags)
        if event.allreduce_bytes:  # Ray's counters refuse an increment of 0 (one worker reduces nothing)
            self.metrics[SCORE_ALLREDUCE_BYTES.name].inc(float(event.allreduce_bytes), tags=self.tags)
        durations = self.metrics[PRUNE_EVENT_DURATION.name]
        for phase in PHASES:
            seconds = getattr(event.durations, phase)
            if seconds is not None:
                durations.observe(float(seconds), tags={**self.tags, "phase": phase})
        self._set_rule(event)

    def _set_rule(self, event: PruneEvent) -> None:
        """The gauges of the event in effect: what it left of each group, its threshold or target."""
        for group, ratio in event.group_sparsity.items():
            self.metrics[GROUP_SPARSITY.name].set(ratio, tags={**self.tags, "group": group})
        if event.threshold is not None:
            self.metrics[PRUNE_THRESHOLD.name].set(event.threshold, tags=self.tags)
        if (goal := event.cost_target) is not None:
            self.metrics[PRUNE_TARGET.name].set(goal.keep, tags={**self.tags, "metric": goal.metric})
            self.metrics[PRUNE_KEPT.name].set(goal.kept, tags={**self.tags, "metric": goal.metric})

    def _undo(self, rollback: Rollback) -> None:
        """An event the accuracy budget undid: the gauges go back to the event before it (a Ray
        gauge cannot be removed: what no event before it pruned goes back to the dense values)."""
        undone = self.applied.pop(rollback.event_step, None)
        if undone is not None:
            self._set_rule(restored(undone, self.applied[max(self.applied)] if self.applied else None))

    def on_restart(self, restart: Restart) -> None:
        """One more worker group (or a driver resume): the restart counter."""
        self.metrics[RESTARTS.name].inc(1.0, tags=self.tags)

    def on_startup(self, startup: StartupBreakdown) -> None:
        """The job's start-up, by part (set once, when the first worker group's loop starts)."""
        for part, seconds in startup.parts().items():
            self.metrics[STARTUP.name].set(seconds, tags={**self.tags, "part": part})


def restored(undone: PruneEvent, before: PruneEvent | None) -> PruneEvent:
    """The rule's values once `undone` is rolled back: `before`'s, and the dense model's (nothing
    removed, a threshold of 0, everything kept) where `before` has none."""
    dense = {"threshold": 0.0 if undone.threshold is not None else None,
             "cost_target": undone.cost_target.model_copy(update={"keep": 1.0, "kept": 1.0})
             if undone.cost_target is not None else None}  # fmt: skip
    kept = {"threshold": before.threshold, "cost_target": before.cost_target} if before else {}
    groups = {**dict.fromkeys(undone.group_sparsity, 0.0), **(before.group_sparsity if before else {})}
    return undone.model_copy(update={**dense, **{k: v for k, v in kept.items() if v is not None},
                                     "group_sparsity": groups})  # fmt: skip
