"""The run's record: worker reports merged into a timeline, prune events, throughput gain,
peak memory; written as report.json and drawn as report.png."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slimray.core.jsonsafe import finite
from slimray.core.records import (
    BeforeAfter,
    MaskCheck,
    PruneEvent,
    Restart,
    RestartReason,
    Rollback,
    RunReport,
    TargetOutcome,
    TimelineEntry,
    WindowReport,
    WorkerGroup,
)
from slimray.core.schedule_spec import AutoSpec
from slimray.core.spec import PruneSpec

UNREPORTED = "a new worker group started; its cause was not reported"
TARGET_TOLERANCE = 0.05  # a cost target is reached when the fraction kept is within 5% of it


def _median(values: list[float]) -> float | None:
    """Median of the non-empty windows: robust to a window slowed by a neighbour's burst."""
    values = sorted(v for v in values if v and not math.isnan(v))
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


@dataclass
class Timeline:
    """Merges the ranks' windows of each step into one entry (see `progress.StepMerger`)."""

    start_time: float | None = None  # the job's start (wall clock): entries get elapsed seconds
    entries: list[TimelineEntry] = field(default_factory=list)
    events: list[PruneEvent] = field(default_factory=list)
    rollbacks: list[Rollback] = field(default_factory=list)  # events the accuracy budget undid
    mask_checks: list[MaskCheck] = field(default_factory=list)  # an auto schedule's, rank 0's
    peak_memory: dict[int, int] = field(default_factory=dict)
    restarts: list[Restart] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    weights_sha: dict[int, str] = field(default_factory=dict)  # each rank's final weights
    groups: list[WorkerGroup] = field(default_factory=list)  # each worker group's size and batch
    _groups: list[int] = field(default_factory=list)  # the attempt ids of the groups started
    _pending: list[Restart] = field(default_factory=list)  # restarts whose group has not started
    _phase: int = 0

    def add(self, windows: list[WindowReport]) -> tuple[TimelineEntry, PruneEvent | None]:
        """Merge one step's windows from every rank (rank order) into an entry; with it, the
        prune event applied before the step's windows, if any, as the timeline keeps it."""
        first = windows[0]
        self._note_ranks(windows)
        if first.rollback is not None:
            self.rollbacks.append(first.rollback)
        self.mask_checks.extend(first.mask_checks)
        entry = TimelineEntry.merge(windows, phase=self._phase, elapsed_seconds=self.elapsed(first.time),
                                    restarts=len(self.restarts), rollbacks=len(self.rollbacks),
                                    workers=len(windows))  # fmt: skip
        self.entries.append(entry)
        event = self._note_event(windows)
        entry.throughput_gain = self.gain(entry)
        if first.rollback is not None:  # the steps after it train the model restored: a new phase
            self._phase += 1
        return entry, event

    def restart(self, reason: RestartReason, cause: str, when: float | None) -> Restart:
        """A new worker group is coming (Ray Train's policy retries, or a new driver resumes);
        its step is known when the group starts (`group_started`)."""
        restart = Restart(reason=reason, cause=cause, elapsed_seconds=self.elapsed(when))
        self.restarts.append(restart)
        self._pending.append(restart)
        return restart

    def group_started(self, attempt: int, resumed_from: int | None, warnings: list[str],
                      group: WorkerGroup | None = None) -> Restart | None:  # fmt: skip
        """Rank 0 of a worker group entered its loop: the restarts waiting for it get its step,
        and the windows its replayed steps will redo are dropped. A restart nobody reported
        (a group after the first: a resize, or a cause Ray did not say) is recorded all the
        same, and returned."""
        if attempt in self._groups:
            return None
        step = resumed_from or 0
        unreported = self._note_group(group, step)
        self._groups.append(attempt)
        self.warnings.extend(warnings)
        for restart in self._pending:
            restart.step, restart.from_checkpoint = step, resumed_from is not None
        if self._pending:
            self.entries = [e for e in self.entries if e.step <= step]
            self.events = [e for e in self.events if e.step < step]
            self.rollbacks = [r for r in self.rollbacks if r.step <= step]  # its checkpoint has it
            self.mask_checks = [c for c in self.mask_checks if c.step < step]  # the group redoes the rest
            self._phase = len(self.events) + len(self.rollbacks)
        self._pending = []
        return unreported

    def _note_group(self, group: WorkerGroup | None, step: int) -> Restart | None:
        """Keep the group's size and batch; a size change is said in the restart that brought
        the group (`resized` when no failure did: Ray's elastic policy grew or shrank it)."""
        before = self.groups[-1].workers if self.groups else None
        if group is not None:
            self.groups.append(group.model_copy(update={"step": step}))
        resize = None
        if group is not None and before is not None and before != group.workers:
            resize = f"{before} \u2192 {group.workers} workers"
        if not self._groups or self._pending:
            if resize:  # the last restart is the one that brought this group
                self._pending[-1].cause = f"{self._pending[-1].cause} ({resize})"
            return None
        if resize:
            resized = self.restart(RestartReason.RESIZED, resize, None)
            resized.elapsed_seconds = group.elapsed_seconds
            return resized
        return self.restart(RestartReason.WORKER_FAILED, UNREPORTED, None)

    def _note_ranks(self, windows: list[WindowReport]) -> None:
        """Each rank's peak memory so far, and the digest of its final weights when it sent one."""
        for w in windows:
            self.peak_memory[w.rank] = max(self.peak_memory.get(w.rank, 0), w.peak_memory_bytes)
            if w.weights_sha:
                self.weights_sha[w.rank] = w.weights_sha

    def _note_event(self, windows: list[WindowReport]) -> PruneEvent | None:
        """The step's prune event, with every rank's mask digest and local-score digest."""
        if windows[0].event is None:
            return None
        events = {str(w.rank): w.event for w in windows if w.event is not None}
        event = windows[0].event.model_copy(update={
            "digest_by_rank": {rank: e.digest for rank, e in events.items()},
            "local_scores_sha_by_rank": {rank: e.local_scores_sha for rank, e in events.items()},
        })  # fmt: skip
        self.events.append(event)
        self._phase += 1
        return event

    def kept_events(self) -> list[PruneEvent]:
        """The prune events the final model holds: those the accuracy budget did not undo."""
        undone = {r.event_step for r in self.rollbacks}
        return [e for e in self.events if e.step not in undone]

    def elapsed(self, when: float | None) -> float | None:
        if when is None or self.start_time is None:
            return None
        return round(when - self.start_time, 3)

    def phase_throughput(self, phase: int) -> float | None:
        """Median samples/s of a phase; the run's first window (warm-up) is left out unless it
        is all the phase has (tracing is already excluded from every window)."""
        entries = [e for e in self.entries if e.phase == phase and e.samples_per_second]
        if len(entries) > 1 and entries[0] is self.entries[0]:
            entries = entries[1:]
        return _median([e.samples_per_second for e in entries])

    @property
    def dense_throughput(self) -> float | None:
        return self.phase_throughput(0)

    @property
    def final_throughput(self) -> float | None:
        last = max((e.phase for e in self.entries), default=0)
        return self.phase_throughput(last)

    def gain(self, entry: TimelineEntry) -> float | None:
        dense = self.dense_throughput
        if not dense or not entry.samples_per_second:
            return None
        return entry.samples_per_second / dense


def _sizes(timeline: Timeline) -> dict[str, BeforeAfter]:
    """Parameters, FLOPs and gradient bytes before the first prune event and at the end."""
    first = timeline.entries[0] if timeline.entries else None
    last = timeline.entries[-1] if timeline.entries else None
    event = timeline.events[0] if timeline.events else None

    def pair(name: str, before_event: int | None = None) -> BeforeAfter:
        before = before_event if before_event is not None else getattr(first, name, None)
        return BeforeAfter(before=before, after=getattr(last, name, None))

    return {"params": pair("params", event.params_before if event else None),
            "gradient_allreduce_bytes_per_step": pair("gradient_allreduce_bytes_per_step"),
            "flops_per_sample": pair("flops", event.flops_before if event else None)}  # fmt: skip


def target_outcome(prune: PruneSpec, events: list[PruneEvent],
                   rollbacks: Sequence[Rollback] = ()) -> TargetOutcome | None:  # fmt: skip
    """A cost target against the fraction its kept events reached, and what stopped it short
    (the accuracy budget first: an event it undid is why a target is missed, not the events)."""
    if prune.target is None:
        return None
    metric, goal = prune.target.metric, prune.target.keep
    done = [e for e in events if e.cost_target is not None]
    kept = done[-1].cost_target.kept if done else None  # type: ignore[union-attr]
    reached = kept is not None and abs(kept - goal) <= TARGET_TOLERANCE * goal
    limit = None
    if not reached:
        limit = _budget_limit(prune, rollbacks) if rollbacks else _target_limit(prune, done, kept)
    return TargetOutcome(metric=metric, target=goal, kept=kept, reached=reached, limited_by=limit)


def _budget_limit(prune: PruneSpec, rollbacks: Sequence[Rollback]) -> str:
    """A target missed because the accuracy budget undid events: which, and what followed."""
    undone = ", ".join(f"step {r.event_step} (at {r.level:.3g})" for r in rollbacks)
    last = rollbacks[-1]
    then = (f"its last retry was at {last.retry_level:.3g}" if last.retry_level is not None
            else "pruning stopped")  # fmt: skip
    return (
        f"the accuracy budget (prune.max_accuracy_drop={prune.max_accuracy_drop}) undid the event of "
        f"{undone}: accuracy fell more than the budget below {last.reference:.4f}; {then}"
    )


def _target_limit(prune: PruneSpec, done: list[PruneEvent], kept: float | None) -> str:
    """Why a cost target was missed: events that never ran, the floor, or too coarse a step."""
    metric, scheduled = prune.target.metric, prune.schedule.event_count()  # type: ignore[union-attr]
    if kept is None or len(done) < scheduled:
        return f"the job ran {len(done)} of its {scheduled} prune events"
    if kept > prune.target.keep:  # type: ignore[union-attr]
        whole = [k.path for k in done[-1].kept_whole]
        return (
            f"every prunable group is at its floor (min_channels={prune.min_channels}, round_to="
            f"{prune.round_to}): the rest of the {metric} is in what is never pruned (the model's "
            f"inputs and outputs" + (f", layers kept whole: {', '.join(whole)})" if whole else ")")
        )
    return (
        f"the smallest removal that fit the budget went {TARGET_TOLERANCE:.0%} past it: channels go "
        f"{prune.round_to} at a time and one of them weighs that much of the {metric}"
    )


def build_report(timeline: Timeline, prune: PruneSpec | None = None, **fields: Any) -> RunReport:
    """The run's report from its timeline; `fields` are the job's (`RunReport`'s first fields) and
    `prune` its pruning (a cost target is measured against what the run kept)."""
    dense, final = timeline.dense_throughput, timeline.final_throughput
    last = timeline.entries[-1] if timeline.entries else None
    weights, kept = timeline.weights_sha, timeline.kept_events()
    target = target_outcome(prune, kept, timeline.rollbacks) if prune is not None else None
    if target is not None:  # only a job with a target has the key
        fields = {**fields, "target": target}
    if prune is not None and prune.max_accuracy_drop is not None:  # only a job with a budget has it
        fields = {**fields, "rollbacks": timeline.rollbacks}
    if prune is not None and isinstance(prune.schedule, AutoSpec):  # only an auto schedule checks masks
        fields = {**fields, "mask_checks": timeline.mask_checks}
    return RunReport(
        **fields, **_sizes(timeline),
        dense_samples_per_second=dense,
        final_samples_per_second=final,
        throughput_gain=(final / dense) if dense and final else None,
        final_sparsity=last.sparsity if last else None,
        final_group_sparsity=kept[-1].group_sparsity if kept else {},
        final_val_accuracy=last.val_accuracy if last else None,
        peak_memory_bytes_per_worker={str(k): v for k, v in sorted(timeline.peak_memory.items())},
        restarts_from_steps=[r.step for r in timeline.restarts if r.step is not None],
        restarts=timeline.restarts,
        worker_groups=timeline.groups,
        warnings=timeline.warnings,
        weights_sha_by_rank={str(k): v for k, v in sorted(weights.items())},
        replicas_identical=len(set(weights.values())) == 1 if weights else None,
        prune_events=timeline.events,
        timeline=timeline.entries,
    )  # fmt: skip


def write_report(run_dir: Path, report: RunReport) -> Path:
    path = Path(run_dir) / "report.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(finite(report.wire()), indent=2, default=str, allow_nan=False))
    tmp.replace(path)
    return path


def plot_report(run_dir: Path, report: RunReport) -> Path | None:
    """Throughput, parameters and accuracy against step; prune events (grey) and rollbacks (red)
    marked."""
    entries = report.timeline
    if not entries:
        return None
    # lazy: matplotlib only when a report is drawn, and its Agg backend chosen before pyplot loads
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: after matplotlib.use (above)

    steps = [e.step for e in entries]
    fig, axes = plt.subplots(3, 1, figsize=(8, 9), sharex=True)
    axes[0].plot(steps, [e.samples_per_second for e in entries], marker=".")
    axes[0].set_ylabel("train samples/s (all workers)")
    axes[1].plot(steps, [e.params for e in entries], marker=".", color="tab:orange")
    axes[1].set_ylabel("parameters")
    axes[2].plot(steps, [e.accuracy for e in entries], marker=".", label="train (window)")
    val = [(e.step, e.val_accuracy) for e in entries if e.val_accuracy is not None]
    if val:
        axes[2].plot(*zip(*val, strict=True), marker="o", label="validation")
    axes[2].set_ylabel("accuracy")
    axes[2].set_xlabel("step")
    axes[2].legend(loc="lower right")
    for event in report.prune_events:
        for ax in axes:
            ax.axvline(event.step, color="grey", linestyle="--", linewidth=0.8)
    for rollback in report.rollbacks:  # where the accuracy budget undid an event
        for ax in axes:
            ax.axvline(rollback.step, color="tab:red", linestyle=":", linewidth=1.2)
    gain, title = report.throughput_gain, report.job or "slimray run"
    fig.suptitle(f"{title}: throughput gain {gain:.2f}x" if gain else title)
    fig.tight_layout()
    path = Path(run_dir) / "report.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
