"""`schedule: {kind: auto}`: pruning starts when the mask the criterion would choose stops changing
(Early-Bird, You et al. 2020), checked on the allreduced scores, so every rank decides alike; then
`prune_step.AutoEvents` spaces the events `gap` steps apart, each an equal share of the amount."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from slimray.core.records import AutoState, MaskCheck
from slimray.core.schedule_spec import AutoSpec
from slimray.core.spec import PruneSpec
from slimray.pruning import PrunePlan
from slimray.runtime.prune_step import Amount, AutoEvents


def mask_distance(before: Mapping[str, list[int]], plan: PrunePlan) -> float:
    """The share of the plan's channels whose keep-or-remove choice differs from `before`'s (the
    normalized Hamming distance of the two masks)."""
    total = sum(plan.sizes.values())
    changed = sum(len(set(before.get(group, ())) ^ set(kept)) for group, kept in plan.keep.items())
    return changed / total if total else 0.0


@dataclass
class EarlyBird:
    """Until pruning starts: every `every` steps, the mask the first event would choose; it starts
    after `window` checks in a row moved less than `epsilon` of the channels, or at `latest`. The
    checks reach the driver with the next window (`drain`)."""

    schedule: AutoSpec
    latest: int
    first: Amount  # what the first event removes: the mask checked is the one it would choose
    pending: list[MaskCheck] = field(default_factory=list)

    def watch(self, step: int, state: AutoState, mask_at: Callable[[Amount], PrunePlan]) -> None:
        """Check the mask if one is due at `step` (`mask_at` scores, allreduces and plans)."""
        if state.started_at is not None:
            return
        if step >= self.latest:
            state.started_at = step
            self.pending.append(MaskCheck(step=step, start="latest"))
            return
        if step % self.schedule.every:
            return
        plan = mask_at(self.first)
        distance = None if state.last_keep is None else mask_distance(state.last_keep, plan)
        settled = distance is not None and distance < self.schedule.epsilon
        state.streak = state.streak + 1 if settled else 0
        state.last_keep = {group: list(kept) for group, kept in plan.keep.items()}
        start = "settled" if state.streak >= self.schedule.window else None
        if start:
            state.started_at = step
        self.pending.append(MaskCheck(step=step, distance=distance, start=start))

    def drain(self) -> list[MaskCheck]:
        """The checks since the last window's."""
        checks, self.pending = self.pending, []
        return checks


def early_bird(prune: PruneSpec | None, rule: object, total_steps: int) -> EarlyBird | None:
    """The job's mask watcher: only an auto schedule has one."""
    if prune is None or not isinstance(rule, AutoEvents):
        return None
    latest = rule.schedule.latest_start(total_steps, prune.checked_recovery)
    return EarlyBird(rule.schedule, latest, rule.amount(1))
