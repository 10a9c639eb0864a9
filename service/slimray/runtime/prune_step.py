"""A prune event's record: built from the scored mask and the surgery's result, completed with
the retrace time once the smaller model's first step has run (only then is it recorded)."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from slimray.core.records import CostGoal, KeptWholeLayer, PruneDurations, PruneEvent
from slimray.core.schedule_spec import AutoSpec
from slimray.core.spec import PruneSpec
from slimray.pruning import CostTarget, PruningSchedule, Threshold, get_schedule

Amount = float | Threshold | CostTarget  # what one event removes: a sparsity, a threshold, a budget


@dataclass(frozen=True)
class SparsityEvents:
    """Prune when the schedule asks for more sparsity than the model has (a resumed job does not
    repeat the events its checkpoint already holds)."""

    schedule: PruningSchedule

    def amount_at(self, step: int, sparsity: float) -> float | None:
        due, target = self.schedule(step)
        return target if due and target > sparsity + 1e-9 else None


@dataclass(frozen=True)
class ThresholdEvents:
    """The importance-threshold rule at each of the schedule's steps (a resumed job starts after
    its last event: the checkpoint of the step after an event is forced)."""

    threshold: Threshold
    steps: frozenset[int]

    def amount_at(self, step: int, sparsity: float) -> Threshold | None:
        return self.threshold if step in self.steps else None


@dataclass(frozen=True)
class TargetEvents:
    """A cost target approached along the schedule: each event keeps 1 - (the schedule's amount)
    of the dense model's count (a resumed job starts after its last event, as with a threshold)."""

    metric: str
    schedule: PruningSchedule

    def amount_at(self, step: int, sparsity: float) -> CostTarget | None:
        due, removed = self.schedule(step)
        return CostTarget(self.metric, 1.0 - removed) if due else None


@dataclass(frozen=True)
class AutoEvents:
    """An auto schedule's events: none until `started_at()` names the first one's step, then
    `events` of them `gap` steps apart (a resumed job does not repeat the ones it holds)."""

    schedule: AutoSpec
    gap: int
    started_at: Callable[[], int | None]
    final: float | None  # the share removed at the last event (None: a threshold)
    threshold: float | None = None
    metric: str | None = None  # a cost target's

    def amount(self, k: int) -> Amount:
        """What the k-th event (from 1) removes: the threshold, or k / events of the way."""
        if self.threshold is not None:
            return Threshold(self.threshold)
        share = (self.final or 0.0) * k / self.schedule.events
        return CostTarget(self.metric, 1.0 - share) if self.metric else share

    def amount_at(self, step: int, sparsity: float) -> Amount | None:
        start = self.started_at()
        if start is None or step < start:
            return None
        k, off = divmod(step - start, self.gap)
        if off or k >= self.schedule.events:
            return None
        amount = self.amount(k + 1)
        return None if isinstance(amount, float) and amount <= sparsity + 1e-9 else amount


EventRule = SparsityEvents | ThresholdEvents | TargetEvents | AutoEvents


def event_rule(prune: PruneSpec, started_at: Callable[[], int | None] = lambda: None) -> EventRule:
    """What a job's prune events remove, and when: a sparsity schedule, a threshold or a target;
    under an auto schedule, from the step `started_at()` names (`early_bird` decides it)."""
    if isinstance(prune.schedule, AutoSpec):
        metric = prune.target.metric if prune.target is not None else None
        gap = prune.schedule.gap(prune.checked_recovery)
        return AutoEvents(prune.schedule, gap, started_at, prune.final_amount, prune.threshold, metric)
    if prune.threshold is not None:
        return ThresholdEvents(Threshold(prune.threshold), frozenset(prune.schedule.event_steps()))
    if prune.target is not None:
        return TargetEvents(prune.target.metric, get_schedule(prune.schedule_config()))
    return SparsityEvents(get_schedule(prune.schedule_config()))


def against_dense(amount: Amount, events: list[PruneEvent]) -> Amount:
    """A cost target counts against the dense model: the first event's count before it."""
    if not isinstance(amount, CostTarget) or not events:
        return amount
    return dataclasses.replace(amount, dense=getattr(events[0], f"{amount.metric}_before"))


def _cost_goal(amount: CostTarget, summary: Mapping[str, Any]) -> CostGoal:
    """The target's step and what the shrunk model kept of the dense count (exact)."""
    dense = amount.dense if amount.dense is not None else summary[f"{amount.metric}_before"]
    kept = summary[f"{amount.metric}_after"] / dense if dense else 1.0
    return CostGoal(metric=amount.metric, keep=round(amount.keep, 6), kept=round(kept, 6))


def sparsity_after(groups: list[dict[str, Any]], baseline_sizes: Mapping[str, int]) -> float:
    """Fraction of the unpruned model's prunable channels that are gone."""
    kept = sum(len(g["kept"]) for g in groups)
    return 1.0 - kept / sum(baseline_sizes.values())


def group_sparsity(groups: list[dict[str, Any]], baseline_sizes: Mapping[str, int]) -> dict[str, float]:
    """Per group id, the fraction of its unpruned channels that are gone."""
    return {g["id"]: round(1.0 - len(g["kept"]) / baseline_sizes.get(g["id"], g["size"]), 6) for g in groups}


def prune_event_record(
    step: int, amount: Amount, sparsity: float, scored: Any, result: Any, world: int,
    baseline_sizes: Mapping[str, int],
) -> PruneEvent:  # fmt: skip
    """The event as this worker applied it (`amount`: its target sparsity, threshold or cost target;
    `scored`: a `PruneDecision`, `result`: a `PruneResult`); its retrace is None: the next step fills it."""
    summary = result.summary()
    return PruneEvent(
        step=step,
        target_sparsity=amount if isinstance(amount, float | int) else None,
        threshold=amount.tau if isinstance(amount, Threshold) else None,
        cost_target=_cost_goal(amount, summary) if isinstance(amount, CostTarget) else None,
        sparsity=sparsity,
        group_sparsity=group_sparsity(summary["groups"], baseline_sizes),
        groups_pruned=sum(1 for g in summary["groups"] if len(g["kept"]) < g["size"]),
        **{k: summary[k] for k in ("channels_before", "channels_after", "params_before",
                                   "params_after", "flops_before", "flops_after", "digest")},
        local_scores_sha=hashlib.sha256(scored.local_scores.tobytes()).hexdigest()[:16],
        allreduce_bytes=scored.allreduce_bytes * world,  # every worker contributed as many
        durations=PruneDurations(**summary["durations"]),
        kept_whole=[KeptWholeLayer(**layer) for layer in summary["kept_whole"]],
        approximate=summary["approximate"],
    )  # fmt: skip


def with_retrace(event: PruneEvent, seconds: float) -> PruneEvent:
    """The event completed with the seconds its smaller model's first step spent tracing."""
    durations = event.durations.model_copy(update={"retrace": seconds})
    return event.model_copy(update={"durations": durations})
