"""Prometheus exposition: per-job training metrics read from the store at scrape time, plus
service-wide job counts and request latency. Names follow the Prometheus conventions."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from pydantic import ValidationError

from slimray.core.jobstate import JobState
from slimray.core.metric_families import (
    GROUP_SPARSITY,
    HTTP_REQUEST_DURATION,
    JOB_FAILED,
    JOB_INFO,
    JOB_STATE,
    JOBS,
    LAST_PRUNE_EVENT,
    PHASES,
    PRUNE_EVENT_DURATION,
    PRUNE_EVENTS,
    PRUNE_KEPT,
    PRUNE_TARGET,
    PRUNE_THRESHOLD,
    RAY_REACHABLE,
    RESTARTS,
    ROLLBACKS,
    SCORE_ALLREDUCE_BYTES,
    STARTUP,
    WINDOW_GAUGES,
    Family,
    Kind,
)
from slimray.core.spec import DEFAULT_BACKEND
from slimray.core.startup import STARTUP_PARTS
from slimray.service.api.schemas import UNDONE_EVENTS, PruneEventIn
from slimray.service.store import Job, Store

_KINDS = {Kind.GAUGE: GaugeMetricFamily, Kind.COUNTER: CounterMetricFamily,
          Kind.HISTOGRAM: HistogramMetricFamily}  # fmt: skip
# the per-job families, in the order they are exposed
JOB_FAMILIES = (*WINDOW_GAUGES, PRUNE_EVENTS, SCORE_ALLREDUCE_BYTES, PRUNE_EVENT_DURATION, JOB_STATE,
                JOB_FAILED, LAST_PRUNE_EVENT, GROUP_SPARSITY, PRUNE_THRESHOLD, PRUNE_TARGET, PRUNE_KEPT,
                JOB_INFO, RESTARTS, ROLLBACKS, STARTUP)  # fmt: skip


def exposed(family: Family, **value: float) -> Metric:
    """One scrape's family of a description; one without labels takes its `value` here."""
    return _KINDS[family.kind](family.name, family.help, labels=list(family.labels) or None, **value)


@dataclass
class _JobFamilies:
    """One scrape's per-job metric families by name; `add` puts one stored job's series in each."""

    families: dict[str, Metric]

    @classmethod
    def empty(cls) -> _JobFamilies:
        return cls({family.name: exposed(family) for family in JOB_FAMILIES})

    def add(self, job: Job) -> None:
        series = self.families
        series[JOB_STATE.name].add_metric([job.id, job.state.value], 1.0)
        series[JOB_INFO.name].add_metric([job.id, str(job.spec.get("backend", DEFAULT_BACKEND))], 1.0)
        if job.state == JobState.FAILED:
            series[JOB_FAILED.name].add_metric([job.id, error_type(job.error)], 1.0)
        for family in (*WINDOW_GAUGES, RESTARTS, ROLLBACKS):
            value = job.metrics.get(family.field)
            if isinstance(value, (int, float)):
                series[family.name].add_metric([job.id], float(value))
        self._add_prune_events(job)
        self._add_startup(job)

    def _add_startup(self, job: Job) -> None:
        """The job's start-up by part, once its driver has reported it."""
        startup = job.metrics.get(STARTUP.field)
        if not isinstance(startup, dict):
            return
        for part in STARTUP_PARTS:
            if isinstance(seconds := startup.get(part), (int, float)):
                self.families[STARTUP.name].add_metric([job.id, part], float(seconds))

    def _add_prune_events(self, job: Job) -> None:
        """The job's prune-event count, allreduced bytes, phase histograms and last duration."""
        events, series = _stored_events(job), self.families
        series[PRUNE_EVENTS.name].add_metric([job.id], float(len(events)))
        allreduced = sum(e.allreduce_bytes or 0 for e in events if e is not None)
        series[SCORE_ALLREDUCE_BYTES.name].add_metric([job.id], float(allreduced))
        if events:
            series[LAST_PRUNE_EVENT.name].add_metric([job.id], float(sum(_seconds(events[-1]).values())))
        stored = job.metrics.get(UNDONE_EVENTS)
        undone = {s for s in stored if isinstance(s, int)} if isinstance(stored, list) else set()
        in_effect = [e for e in events if e is None or e.step not in undone]
        if in_effect:  # the rule of the last event the accuracy budget did not undo
            self._add_last_rule(job.id, in_effect[-1])
        measured = [_seconds(e) for e in events]
        for phase in PHASES:
            values = [m[phase] for m in measured if phase in m]
            buckets = [(str(b), float(sum(v <= b for v in values))) for b in PRUNE_EVENT_DURATION.buckets]
            buckets.append(("+Inf", float(len(values))))
            histogram = series[PRUNE_EVENT_DURATION.name]
            histogram.add_metric([job.id, phase], buckets, sum_value=float(sum(values)))

    def _add_last_rule(self, job_id: str, event: PruneEventIn | None) -> None:
        """What the job's last event left of each group, and the threshold or the cost target it
        applied (if any), with what that kept."""
        if event is None:
            return
        for group, ratio in (event.group_sparsity or {}).items():
            self.families[GROUP_SPARSITY.name].add_metric([job_id, group], float(ratio))
        if event.threshold is not None:
            self.families[PRUNE_THRESHOLD.name].add_metric([job_id], float(event.threshold))
        if (goal := event.cost_target) is not None:
            self.families[PRUNE_TARGET.name].add_metric([job_id, goal.metric], float(goal.keep))
            self.families[PRUNE_KEPT.name].add_metric([job_id, goal.metric], float(goal.kept))

    def __iter__(self) -> Iterator[Metric]:
        yield from self.families.values()


def _stored_events(job: Job) -> list[PruneEventIn | None]:
    """The job's stored prune events as records (None for a row stored before events were checked
    that no record accepts: it counts as an event, with no numbers)."""
    events: list[PruneEventIn | None] = []
    for event in job.prune_events:
        try:
            events.append(PruneEventIn.model_validate(event))
        except ValidationError:
            events.append(None)
    return events


def _seconds(event: PruneEventIn | None) -> dict[str, float]:
    """The phases of a prune event that were measured: {phase: seconds}."""
    durations = event.durations if event is not None else None
    return {phase: float(v) for phase in PHASES if (v := getattr(durations, phase, None)) is not None}


class JobCollector:
    """Builds per-job metric families from the most recent jobs on every scrape."""

    def __init__(self, store: Store, job_limit: int):
        self.store = store
        self.job_limit = job_limit

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        families = _JobFamilies.empty()
        for job in self.store.recent(self.job_limit):
            families.add(job)
        yield from families


def error_type(error: str | None) -> str:
    """The exception class a job's error names ("MaskDisagreementError: ..."), else "other"."""
    match = re.search(r"\b([A-Z][A-Za-z0-9]*(?:Error|Exception))\b", error or "")
    return match.group(1) if match else "other"


class StateCollector:
    """Job counts by state and Ray's reachability: service-wide, no job named (safe for
    unauthenticated scrapes)."""

    def __init__(self, store: Store, ray_reachable: Callable[[], bool | None] = lambda: None):
        self.store = store
        self.ray_reachable = ray_reachable

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        by_state = exposed(JOBS)
        for state, n in self.store.counts_by_state().items():
            by_state.add_metric([state.value], float(n))
        yield by_state
        reachable = self.ray_reachable()
        if reachable is not None:
            yield exposed(RAY_REACHABLE, value=float(reachable))


HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_label(method: str) -> str:
    """Bounded label values: any other method name a client sends counts as "other"."""
    return method if method in HTTP_METHODS else "other"


@dataclass(frozen=True)
class Registries:
    """`full` holds per-job series (authenticated scrapes); `public` only service-wide ones."""

    full: CollectorRegistry
    public: CollectorRegistry
    requests: Histogram


def build_registries(store: Store, job_limit: int,
                     ray_reachable: Callable[[], bool | None] = lambda: None) -> Registries:  # fmt: skip
    """Fresh registries (not the global one); the request histogram is in both."""
    http = HTTP_REQUEST_DURATION
    requests = Histogram(http.name, http.help, labelnames=http.labels, buckets=http.buckets, registry=None)
    full, public = CollectorRegistry(auto_describe=False), CollectorRegistry(auto_describe=False)
    full.register(JobCollector(store, job_limit))
    for registry in (full, public):
        registry.register(StateCollector(store, ray_reachable))
        registry.register(requests)
    return Registries(full, public, requests)


__all__ = ["PHASES", "JobCollector", "JobState", "Registries", "build_registries", "method_label"]
