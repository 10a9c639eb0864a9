"""Typed records of a run, as they travel worker → driver → service and CLI: one rank's window of
training, a prune event, a timeline entry, the driver's progress report and the run's report.
Pure pydantic (no TensorFlow, Ray or HTTP) so every side shares them; a window metric is one
annotated field of `WindowMetrics`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from slimray.core.jobstate import JobState
from slimray.core.record_base import Record
from slimray.core.startup import StartupBreakdown


class Merge(StrEnum):
    """How the ranks' values of one step's windows join into the step's timeline entry."""

    SUM = "sum"  # every rank's share of a total (samples/s; loss: each rank's share of the mean)
    MAX = "max"  # the slowest rank's (step time)
    MEAN = "mean"  # an average over ranks of equal weight (accuracy over each rank's own samples)
    FIRST = "first"  # the same on every rank (model size, sparsity), or rank 0's only (validation)


class Retain(StrEnum):
    """How the service keeps a window metric in a job's `metrics` across its reports (a metric
    without this rule is not kept there)."""

    LATEST = "latest"  # the last report's value, null included
    LAST_KNOWN = "last_known"  # the last non-null value (validation runs on some windows only)


@dataclass(frozen=True)
class Gauge:
    """A field exported as the Prometheus gauge `slimray_<name>` (service and Ray metrics alike)."""

    name: str
    help: str


def metadata_of(model: type[BaseModel], field: str, kind: type) -> Any:
    """The `Annotated` metadata of type `kind` on `model.field` (None when it has none)."""
    return next((m for m in model.model_fields[field].metadata if isinstance(m, kind)), None)


# a float that may be NaN (no sample yet): strict JSON writes NaN as null, read back as NaN here
NaNFloat = Annotated[float, BeforeValidator(lambda value: math.nan if value is None else value)]


class WindowMetrics(Record):
    """The metrics every window carries, each with its merge rule across ranks and, if exported,
    its gauge. Adding a window metric = one field here (+ its renderers)."""

    samples_per_second: Annotated[
        float, Merge.SUM, Retain.LATEST,
        Gauge("train_samples_per_second", "Training samples per second, all workers."),
    ] = 0.0  # fmt: skip
    step_time: Annotated[float, Merge.MAX, Retain.LATEST] = 0.0
    loss: Annotated[NaNFloat, Merge.SUM, Retain.LATEST] = math.nan
    accuracy: Annotated[NaNFloat, Merge.MEAN, Retain.LATEST] = math.nan
    params: Annotated[
        int, Merge.FIRST, Retain.LATEST,
        Gauge("model_parameters", "Parameters of the current (pruned) model."),
    ]  # fmt: skip
    flops: Annotated[
        int, Merge.FIRST, Retain.LATEST,
        Gauge("model_flops_per_sample", "FLOPs per sample of the current model."),
    ]  # fmt: skip
    gradient_allreduce_bytes_per_step: Annotated[
        int | None, Merge.FIRST, Retain.LATEST,
        Gauge("gradient_allreduce_bytes_per_step",
              "Bytes of gradients each worker allreduces per step (falls as the model shrinks)."),
    ] = None  # fmt: skip
    sparsity: Annotated[
        float, Merge.FIRST, Retain.LATEST,
        Gauge("sparsity_ratio", "Fraction of prunable channels removed (0-1)."),
    ] = 0.0  # fmt: skip
    val_accuracy: Annotated[float | None, Merge.FIRST, Retain.LAST_KNOWN] = None  # rank 0 evaluates
    allreduce_bytes_total: Annotated[int, Merge.SUM] = 0  # channel-score bytes reduced so far


class PruneDurations(Record):
    """Seconds each phase of a prune event took; `retrace` is the next step's tracing, filled
    in when that step has run (None until then)."""

    score: float | None = None
    allreduce: float | None = None
    agreement: float | None = None
    surgery: float | None = None
    retrace: float | None = None

    def total(self) -> float:
        return sum(v for v in self.model_dump().values() if v is not None)


PRUNE_PHASES = tuple(PruneDurations.model_fields)


class KeptWholeLayer(Record):
    """A layer or op pruning could not see through: its channels were kept whole."""

    path: str  # nested models joined by '/', e.g. "block/inner_conv"
    operation: str  # as the user wrote it, e.g. "keras.layers.LSTM" or "keras.ops.add"
    reason: str
    flops_share: float = 0.0  # share of the model's FLOPs only kept-whole layers hold, this one's


class CostGoal(Record):
    """A cost target's event: the share of the dense model's `metric` it aimed to keep (`keep`,
    the schedule's step toward the target) and the share the shrunk model kept (`kept`, exact)."""

    metric: str
    keep: float
    kept: float


class Rollback(Record):
    """A prune event undone by the accuracy budget: `recovery` steps after it, its agreed
    validation accuracy had dropped more than the budget below the reference."""

    event_step: int  # the event undone (the model went back to the one before it)
    step: int  # the check that undid it
    accuracy: float
    reference: float
    budget: float
    level: float  # what the event removed: its sparsity, threshold or share of the dense count
    retry_level: float | None = None  # the smaller retry applied at `step` (None: pruning stopped)


class BudgetState(Record):
    """What the budget knows, checkpointed with the train state (a resumed group judges the same)."""

    reference: float | None = None  # the accuracy the drop counts from
    check_at: int | None = None  # the pending check's step (None: nothing to judge)
    event_step: int | None = None  # the event being judged
    level: float = 0.0  # its level
    level_before: float = 0.0  # the model's level before it (a threshold's is 0)
    limit: float | None = None  # no event prunes past this level once one was undone
    retries: int = 0  # smaller retries since the last passed check
    retry: float | None = None  # a retry's level, due at the next step
    deferred: float | None = None  # the level of an event the rule asked for while a check was pending
    stopped: bool = False  # pruning ended by the budget
    rollbacks: list[Rollback] = Field(default_factory=list)


class MaskCheck(Record):
    """One check of an auto schedule (`early_bird`): the share of channels whose keep-or-remove
    choice changed since the previous check (None at the first), and whether pruning starts here
    (`settled`: `window` checks in a row under epsilon; `latest`: the latest start came first)."""

    step: int
    distance: float | None = None
    start: Literal["settled", "latest"] | None = None


class AutoState(Record):
    """What an auto schedule knows, checkpointed with the train state (a resumed group goes on)."""

    streak: int = 0  # checks in a row under epsilon
    last_keep: dict[str, list[int]] | None = None  # the previous check's mask: kept channels by group
    started_at: int | None = None  # the first event's step, once decided


class PruneEvent(Record):
    """One prune event as every worker applied it; the driver adds each rank's digests, which
    must all be equal (the same mask everywhere)."""

    step: int = Field(ge=0)
    target_sparsity: float | None  # None: the event applied a threshold or a cost target
    threshold: float | None = None  # the importance-threshold rule's tau, if that was the rule
    cost_target: CostGoal | None = None  # the cost target's step, if that was the rule
    sparsity: float
    group_sparsity: dict[str, float] = Field(default_factory=dict)  # by group id, of its baseline
    groups_pruned: int
    channels_before: int
    channels_after: int
    params_before: int
    params_after: int
    flops_before: int
    flops_after: int
    digest: str  # of the mask
    local_scores_sha: str  # of this worker's scores before the allreduce
    allreduce_bytes: int = Field(0, ge=0)  # channel scores reduced, all workers
    durations: PruneDurations = Field(default_factory=PruneDurations)
    # the wire keeps the name `frozen` (the HTTP API and report.json are unchanged)
    kept_whole: list[KeptWholeLayer] = Field(default_factory=list, alias="frozen")
    approximate: list[str] = Field(default_factory=list)  # paths whose surgery is not exact
    digest_by_rank: dict[str, str] = Field(default_factory=dict)
    local_scores_sha_by_rank: dict[str, str] = Field(default_factory=dict)

    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)


class WindowReport(WindowMetrics):
    """One rank's window: its metrics, who sent it, and the prune event applied before it."""

    rank: int
    step: int
    time: float  # the worker's wall clock when sent
    pid: int
    window_steps: int = 0
    peak_memory_bytes: int = 0
    event: PruneEvent | None = None
    rollback: Rollback | None = None  # the accuracy budget undid an event in this window
    mask_checks: list[MaskCheck] = Field(default_factory=list)  # an auto schedule's, since the last window
    final: bool = False
    resumed_from: int | None = None  # the checkpoint step a restarted group resumed from
    world: int | None = None  # the size of this rank's worker group (elastic jobs resize it)
    weights_sha: str | None = None  # on the final window: to show the replicas ended identical


class RestartReason(StrEnum):
    """Why a worker group was replaced (the few values a restart's metrics and report group by)."""

    WORKER_FAILED = "worker_failed"  # a worker raised, or its process died
    WORKER_HUNG = "worker_hung"  # a worker stopped answering (failure.collective_timeout_seconds)
    STARTUP_FAILED = "startup_failed"  # a worker was lost while the group started
    PREEMPTED = "preempted"  # Ray reported the node preempted
    DRIVER_RESUMED = "driver_resumed"  # a new driver continued the run directory's job
    RESIZED = "resized"  # Ray Train's elastic policy changed the group's size (capacity came or went)


class Restart(Record):
    """One new worker group after the first: the checkpoint step it resumed from (0: from scratch,
    None: no group started after it) and why, as Ray Train's failure policy saw it."""

    step: int | None = None
    from_checkpoint: bool = False
    reason: RestartReason
    cause: str  # the failure, naming the ranks (e.g. "rank 1 did not answer for 5 s")
    elapsed_seconds: float | None = None  # when it was decided, since the job's start


class WorkerGroup(Record):
    """One worker group's life: the step it started from, its size, and the batch rule's split
    of the job's global batch over it (`core.scaling.group_batch`)."""

    step: int = 0
    workers: int = Field(ge=1)
    per_worker_batch: int = Field(ge=1)
    global_batch: int = Field(ge=1)
    elapsed_seconds: float | None = None  # when its rank 0 entered the loop, since the job's start


class TimelineEntry(WindowMetrics):
    """One step of the run: every rank's window of it merged by each metric's `Merge` rule."""

    step: int
    phase: int  # prune events applied when this window's steps ran
    elapsed_seconds: float | None = None
    restarts: Annotated[int, Retain.LATEST] = 0  # worker groups replaced so far (a counter)
    rollbacks: Annotated[int, Retain.LATEST] = 0  # prune events the accuracy budget undid so far
    workers: Annotated[
        int | None, Retain.LATEST,
        Gauge("workers", "Training workers in the job's current worker group (elastic jobs resize it)."),
    ] = None  # fmt: skip
    throughput_gain: Annotated[
        float | None, Retain.LATEST,
        Gauge("throughput_gain_ratio", "Samples/s relative to the unpruned phase."),
    ] = None  # fmt: skip

    @classmethod
    def merge(cls, windows: list[WindowReport], **fields: Any) -> TimelineEntry:
        """The step's entry from its windows (rank order); `fields` gives the rest."""
        merged = {name: _merge(metadata_of(WindowMetrics, name, Merge), [getattr(w, name) for w in windows])
                  for name in WindowMetrics.model_fields}  # fmt: skip
        return cls(step=windows[0].step, **merged, **fields)


_MERGES = {
    Merge.SUM: sum,
    Merge.MAX: max,
    Merge.MEAN: lambda values: sum(values) / len(values),
    Merge.FIRST: lambda values: values[0],
}


def _merge(rule: Merge, values: list[Any]) -> Any:
    return values[0] if values[0] is None else _MERGES[rule](values)


def gauges() -> dict[str, Gauge]:
    """Every exported window metric: {field name: its gauge}, in declaration order."""
    return {name: gauge for name in TimelineEntry.model_fields
            if (gauge := metadata_of(TimelineEntry, name, Gauge)) is not None}  # fmt: skip


def retained() -> dict[str, Retain]:
    """Every window metric the service keeps in a job's `metrics`: {field name: its rule}."""
    return {name: rule for name in TimelineEntry.model_fields
            if (rule := metadata_of(TimelineEntry, name, Retain)) is not None}  # fmt: skip


class ProgressReport(TimelineEntry):
    """What the driver posts as a "report" event: a step's timeline entry, the job's step count
    and the prune event applied before the step's window (with every rank's digests)."""

    total_steps: int = Field(ge=0)
    event: PruneEvent | None = None
    rollback: Rollback | None = None  # the accuracy budget undid an event at this step

    @classmethod
    def of(cls, entry: TimelineEntry, total_steps: int, event: PruneEvent | None,
           rollback: Rollback | None = None) -> ProgressReport:  # fmt: skip
        """The report of a step's timeline entry (its JSON form: `model_dump()`, wire names)."""
        return cls(**dict(entry), total_steps=total_steps, event=event, rollback=rollback)


class BeforeAfter(Record):
    """A size before the first prune event and at the end of the run."""

    before: int | None = None
    after: int | None = None


class TargetOutcome(Record):
    """A job's cost target against what it kept at the end (fractions of the dense model's
    count); `reached`: within 5% of it; `limited_by`: why not, when not."""

    metric: str
    target: float
    kept: float | None  # None: no event ran
    reached: bool
    limited_by: str | None = None


class RunReport(Record):
    """report.json: the job's fields, the run's measures, its prune events and timeline, its wall
    time. `wire()` keeps today's keys: a field the driver never set (the export of a failed run,
    the wall time before the end) is left out, as before."""

    job: str | None = None
    state: JobState | None = None
    error: str | None = None
    started_at: str | None = None
    total_steps: int | None = None
    workers: int | None = None
    backend: str | None = None
    spec: dict[str, Any] | None = None
    exported_accuracy: float | None = None  # the final model reloaded and evaluated by rank 0
    exported_params: int | None = None
    dense_samples_per_second: float | None = None
    final_samples_per_second: float | None = None
    throughput_gain: float | None = None
    params: BeforeAfter = Field(default_factory=BeforeAfter)
    gradient_allreduce_bytes_per_step: BeforeAfter = Field(default_factory=BeforeAfter)
    flops_per_sample: BeforeAfter = Field(default_factory=BeforeAfter)
    final_sparsity: float | None = None
    final_group_sparsity: dict[str, float] = Field(default_factory=dict)  # the last event's, by group id
    target: TargetOutcome | None = None  # a job with prune.target: what it kept of the dense model
    final_val_accuracy: float | None = None
    peak_memory_bytes_per_worker: dict[str, int] = Field(default_factory=dict)
    restarts_from_steps: list[int] = Field(default_factory=list)  # `restarts`' steps (0: from scratch)
    restarts: list[Restart] = Field(default_factory=list)
    worker_groups: list[WorkerGroup] = Field(default_factory=list)  # the worker count over time
    warnings: list[str] = Field(default_factory=list)  # e.g. a corrupt checkpoint skipped
    # the replicas' final weights: one digest when every step averaged the same gradients
    weights_sha_by_rank: dict[str, str] = Field(default_factory=dict)
    replicas_identical: bool | None = None
    prune_events: list[PruneEvent] = Field(default_factory=list)
    rollbacks: list[Rollback] = Field(default_factory=list)  # events the accuracy budget undid
    mask_checks: list[MaskCheck] = Field(default_factory=list)  # an auto schedule's: when it started
    timeline: list[TimelineEntry] = Field(default_factory=list)
    finished_at: str | None = None
    wall_seconds: float | None = None
    wall_time: dict[str, Any] | None = None  # `breakdown.WallTimeBreakdown.to_dict()`
    startup: StartupBreakdown | None = None  # wall_time's `startup`, by part

    def wire(self) -> dict[str, Any]:
        """report.json's content (NaN kept: `jsonsafe.finite` makes it strict JSON)."""
        data = self.model_dump(mode="python")
        return {name: data[name] for name in type(self).model_fields if name in self.model_fields_set}
