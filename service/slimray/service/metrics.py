"""Prometheus exposition: per-job training metrics read from the store at scrape time, plus
service-wide job counts and request latency. Names follow the Prometheus conventions."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from slimray.core.jobstate import JobState
from slimray.core.metric_families import GAUGES as _GAUGES
from slimray.core.metric_families import (
    JOB_INFO,
    JOB_INFO_DOC,
    PRUNE_DURATION_BUCKETS,
    PRUNE_PHASES,
    REQUEST_BUCKETS,
)
from slimray.core.spec import DEFAULT_BACKEND
from slimray.service.store import Job, Store


@dataclass
class _JobFamilies:
    """One scrape's per-job metric families; `add` puts one stored job's series into each."""

    gauges: dict[str, GaugeMetricFamily]
    events: CounterMetricFamily
    allreduce: CounterMetricFamily
    durations: HistogramMetricFamily
    states: GaugeMetricFamily
    failed: GaugeMetricFamily
    last_event: GaugeMetricFamily
    info: GaugeMetricFamily

    @classmethod
    def empty(cls) -> _JobFamilies:
        job = ["job"]
        return cls(
            gauges={key: GaugeMetricFamily(f"slimray_{name}", doc, labels=job) for name, key, doc in _GAUGES},
            events=CounterMetricFamily("slimray_prune_events", "Prune events applied.", labels=job),
            allreduce=CounterMetricFamily(
                "slimray_score_allreduce_bytes", "Bytes of channel scores allreduced.", labels=job
            ),
            durations=HistogramMetricFamily(
                "slimray_prune_event_duration_seconds",
                "Duration of each phase of a prune event.",
                labels=["job", "phase"],
                unit="",
            ),
            states=GaugeMetricFamily(
                "slimray_job_state", "1 for the job's current state.", labels=["job", "state"]
            ),
            failed=GaugeMetricFamily(
                "slimray_job_failed_info",
                "1 for a failed job, by the error's type.",
                labels=["job", "error_type"],
            ),
            last_event=GaugeMetricFamily(
                "slimray_last_prune_event_seconds", "Duration of the job's last prune event.", labels=job
            ),
            info=GaugeMetricFamily(JOB_INFO, JOB_INFO_DOC, labels=["job", "backend"]),
        )

    def add(self, job: Job) -> None:
        self.states.add_metric([job.id, job.state.value], 1.0)
        self.info.add_metric([job.id, str(job.spec.get("backend", DEFAULT_BACKEND))], 1.0)
        if job.state == JobState.FAILED:
            self.failed.add_metric([job.id, error_type(job.error)], 1.0)
        for key, family in self.gauges.items():
            value = job.metrics.get(key)
            if isinstance(value, (int, float)):
                family.add_metric([job.id], float(value))
        self._add_prune_events(job)

    def _add_prune_events(self, job: Job) -> None:
        """The job's prune-event count, allreduced bytes, phase histograms and last duration."""
        events = job.prune_events
        self.events.add_metric([job.id], float(len(events)))
        self.allreduce.add_metric([job.id], float(sum(e.get("allreduce_bytes", 0) or 0 for e in events)))
        if events:
            last = _numbers(events[-1].get("durations", {}).values())
            self.last_event.add_metric([job.id], float(sum(last)))
        for phase in PRUNE_PHASES:
            values = _numbers(e.get("durations", {}).get(phase) for e in events)
            buckets = [(str(b), float(sum(1 for v in values if v <= b))) for b in PRUNE_DURATION_BUCKETS]
            buckets.append(("+Inf", float(len(values))))
            self.durations.add_metric([job.id, phase], buckets, sum_value=float(sum(values)))

    def __iter__(self) -> Iterator[Metric]:
        yield from self.gauges.values()
        yield from (self.events, self.allreduce, self.durations, self.states, self.failed)
        yield from (self.last_event, self.info)


def _numbers(values: Iterable[object]) -> list[float]:
    """The numeric values only: a stored event may lack a phase, or hold null for it."""
    return [float(v) for v in values if isinstance(v, (int, float))]


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
        by_state = GaugeMetricFamily("slimray_jobs", "Jobs in the store, by state.", labels=["state"])
        for state, n in self.store.counts_by_state().items():
            by_state.add_metric([state.value], float(n))
        yield by_state
        reachable = self.ray_reachable()
        if reachable is not None:
            yield GaugeMetricFamily("slimray_ray_reachable", "1 if Ray's job API answered the last probe.",
                                    value=float(reachable))  # fmt: skip


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
    requests = Histogram(
        "slimray_http_request_duration_seconds",
        "HTTP request latency by route template, method and status class.",
        labelnames=["route", "method", "status_class"],
        buckets=REQUEST_BUCKETS,
        registry=None,
    )
    full, public = CollectorRegistry(auto_describe=False), CollectorRegistry(auto_describe=False)
    full.register(JobCollector(store, job_limit))
    for registry in (full, public):
        registry.register(StateCollector(store, ray_reachable))
        registry.register(requests)
    return Registries(full, public, requests)


__all__ = ["PRUNE_PHASES", "JobCollector", "JobState", "Registries", "build_registries", "method_label"]
