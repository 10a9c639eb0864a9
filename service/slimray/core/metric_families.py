"""Every `slimray_*` metric family described once, as data: name, kind, help, labels, buckets.
The service's exposition (`slimray.service.metrics`) and the driver's Ray metrics
(`slimray.runtime.metrics`) both build theirs from it; the window gauges come from the records."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from slimray.core.records import PRUNE_PHASES, gauges
from slimray.core.startup import STARTUP_PARTS


class Kind(StrEnum):
    GAUGE = "gauge"
    COUNTER = "counter"  # exposed with the `_total` suffix the name leaves out
    HISTOGRAM = "histogram"


JOB = "job"  # every per-job family's label (Ray's tag `slimray_job`, relabelled to it)


@dataclass(frozen=True)
class Family:
    """One metric family; `field` names the record field a window gauge (or the restart counter)
    reads from the job's latest report (else None)."""

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = (JOB,)
    buckets: tuple[float, ...] = ()
    field: str | None = None


WINDOW_GAUGES = tuple(Family(f"slimray_{g.name}", Kind.GAUGE, g.help, field=name)
                      for name, g in gauges().items())  # fmt: skip

# 1 per job, labelled with its allreduce backend (`core.spec.BACKENDS`): the job metrics
# join it on `job` (`* on(job) group_left(backend) slimray_job_info`) to compare the two
JOB_INFO = Family("slimray_job_info", Kind.GAUGE,
                  "1 per job, labelled with the backend that allreduces its gradients and scores.",
                  (JOB, "backend"))  # fmt: skip
PRUNE_EVENTS = Family("slimray_prune_events", Kind.COUNTER, "Prune events applied.")
SCORE_ALLREDUCE_BYTES = Family(
    "slimray_score_allreduce_bytes", Kind.COUNTER, "Bytes of channel scores allreduced."
)
PRUNE_EVENT_DURATION = Family(
    "slimray_prune_event_duration_seconds", Kind.HISTOGRAM, "Duration of each phase of a prune event.",
    (JOB, "phase"), buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)  # fmt: skip
GROUP_SPARSITY = Family(
    "slimray_group_sparsity_ratio", Kind.GAUGE,
    "Fraction of each channel group's unpruned channels removed, as of the job's last prune event.",
    (JOB, "group"),
)  # fmt: skip
PRUNE_THRESHOLD = Family(
    "slimray_prune_threshold", Kind.GAUGE,
    "The importance threshold the job's last prune event applied (jobs with prune.threshold).",
)  # fmt: skip
PRUNE_TARGET = Family(
    "slimray_prune_target_ratio", Kind.GAUGE,
    "The share of the dense model's FLOPs or parameters (`metric`) the job's last prune event aimed "
    "to keep: its step toward prune.target (the target itself at the last event).",
    (JOB, "metric"),
)  # fmt: skip
PRUNE_KEPT = Family(
    "slimray_prune_kept_ratio", Kind.GAUGE,
    "The share of the dense model's FLOPs or parameters (`metric`) the job's last prune event kept "
    "(jobs with prune.target; counted on the shrunk model).",
    (JOB, "metric"),
)  # fmt: skip
RESTARTS = Family("slimray_restarts", Kind.COUNTER,
                  "Worker groups replaced (from a checkpoint or from step 0), driver resumes included.",
                  field="restarts")  # fmt: skip
ROLLBACKS = Family("slimray_prune_rollbacks", Kind.COUNTER,
                   "Prune events the accuracy budget undid (prune.max_accuracy_drop): the model went back "
                   "to the one before the event.", field="rollbacks")  # fmt: skip
PHASES = PRUNE_PHASES  # the values of PRUNE_EVENT_DURATION's `phase` label
STARTUP = Family("slimray_startup_seconds", Kind.GAUGE,
                 f"Seconds of the job's start-up, by part: {', '.join(STARTUP_PARTS)}.",
                 (JOB, "part"), field="startup")  # fmt: skip

# the service's alone: read from its store
JOB_STATE = Family("slimray_job_state", Kind.GAUGE, "1 for the job's current state.", (JOB, "state"))
JOB_FAILED = Family("slimray_job_failed_info", Kind.GAUGE, "1 for a failed job, by the error's type.",
                    (JOB, "error_type"))  # fmt: skip
LAST_PRUNE_EVENT = Family(
    "slimray_last_prune_event_seconds", Kind.GAUGE, "Duration of the job's last prune event."
)
JOBS = Family("slimray_jobs", Kind.GAUGE, "Jobs in the store, by state.", ("state",))
RAY_REACHABLE = Family("slimray_ray_reachable", Kind.GAUGE, "1 if Ray's job API answered the last probe.", ())
HTTP_REQUEST_DURATION = Family(
    "slimray_http_request_duration_seconds", Kind.HISTOGRAM,
    "HTTP request latency by route template, method and status class.", ("route", "method", "status_class"),
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)  # fmt: skip

# what a job's driver exports through Ray when no service is in the loop (same names)
DRIVER_FAMILIES = (*WINDOW_GAUGES, JOB_INFO, PRUNE_EVENTS, SCORE_ALLREDUCE_BYTES, PRUNE_EVENT_DURATION,
                   GROUP_SPARSITY, PRUNE_THRESHOLD, PRUNE_TARGET, PRUNE_KEPT, RESTARTS, ROLLBACKS,
                   STARTUP)  # fmt: skip
