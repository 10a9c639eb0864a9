"""A prune event's record: built from the scored mask and the surgery's result, completed with
the retrace time once the smaller model's first step has run (only then is it recorded)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from slimray.core.records import KeptWholeLayer, PruneDurations, PruneEvent


def sparsity_after(groups: list[dict[str, Any]], baseline_sizes: Mapping[str, int]) -> float:
    """Fraction of the unpruned model's prunable channels that are gone."""
    kept = sum(len(g["kept"]) for g in groups)
    return 1.0 - kept / sum(baseline_sizes.values())


def prune_event_record(
    step: int, target: float, sparsity: float, scored: Any, result: Any, world: int
) -> PruneEvent:
    """The event as this worker applied it (`scored`: a `PruneDecision`, `result`: a `PruneResult`);
    its retrace is still None: the next step fills it (`with_retrace`)."""
    summary = result.summary()
    return PruneEvent(
        step=step,
        target_sparsity=target,
        sparsity=sparsity,
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
