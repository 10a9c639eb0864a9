"""The driver's training metrics through Ray's own metrics API (`ray.util.metrics`), so a job
with no service in the loop (`slimray run`, a KubeRay RayJob) reaches Prometheus too: Ray
exports them as `ray_slimray_*` with a `slimray_job` tag on each node's metrics port, and the
PodMonitor (k8s/podmonitor.yaml, the chart's) renames them to the service's `slimray_*` names."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slimray.core.metric_families import GAUGES, JOB_INFO, JOB_INFO_DOC, PRUNE_DURATION_BUCKETS, PRUNE_PHASES
from slimray.core.spec import DEFAULT_BACKEND

EventSink = Callable[[str, dict[str, Any]], None]
TAG = "slimray_job"


class RayMetricsSink:
    """An event sink that records each report as Ray metrics, then passes it on."""

    def __init__(self, job: str, inner: EventSink, backend: str = DEFAULT_BACKEND):
        from ray.util.metrics import Counter, Gauge, Histogram

        self.tags = {TAG: job}
        self.inner = inner
        # 1 per job, labelled with its allreduce backend: joined on `job` to compare backends
        self.info = Gauge(JOB_INFO, JOB_INFO_DOC, tag_keys=(TAG, "backend"))
        self.info_tags = {**self.tags, "backend": backend}
        self.gauges = {key: Gauge(f"slimray_{name}", doc, tag_keys=(TAG,)) for name, key, doc in GAUGES}
        self.events = Counter("slimray_prune_events", "Prune events applied.", tag_keys=(TAG,))
        self.allreduce = Counter("slimray_score_allreduce_bytes", "Bytes of channel scores allreduced.",
                                 tag_keys=(TAG,))  # fmt: skip
        self.durations = Histogram(
            "slimray_prune_event_duration_seconds", "Duration of each phase of a prune event.",
            boundaries=list(PRUNE_DURATION_BUCKETS), tag_keys=(TAG, "phase"),
        )  # fmt: skip

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "report":
            self._report(data)
        self.inner(kind, data)

    def _report(self, data: dict[str, Any]) -> None:
        self.info.set(1.0, tags=self.info_tags)  # with the other gauges: Ray exports what reports set
        for key, gauge in self.gauges.items():
            value = data.get(key)
            if isinstance(value, int | float):
                gauge.set(float(value), tags=self.tags)
        event = data.get("event")
        if event:
            self.events.inc(1.0, tags=self.tags)
            self.allreduce.inc(float(event.get("allreduce_bytes") or 0) or 0.0, tags=self.tags)
            for phase in PRUNE_PHASES:
                seconds = (event.get("durations") or {}).get(phase)
                if isinstance(seconds, int | float):
                    self.durations.observe(float(seconds), tags={**self.tags, "phase": phase})
