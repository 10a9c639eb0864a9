"""The accuracy budget (`prune.max_accuracy_drop`) on the workers: the model before each prune event
is kept; `recovery_steps` later rank 0's validation accuracy, agreed by every rank, judges the
event, and one it could not afford is undone on every worker alike, then retried smaller or ended."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from slimray.core.records import BudgetState, Rollback
from slimray.core.spec import PruneSpec
from slimray.pruning import CostTarget, Threshold
from slimray.runtime.prune_step import Amount


@dataclass(frozen=True)
class AmountKind:
    """One kind of event amount as a level on one axis (more is more pruning), so that a budget
    can cap it and halve it the same way whatever the rule."""

    level: Callable[[Amount], float]
    at: Callable[[Amount, float], Amount]
    now: Callable[[Amount, Any, Any], float]  # the model's level (its train state and its counts)


def _keep(amount: CostTarget, level: float) -> CostTarget:
    return dataclasses.replace(amount, keep=1.0 - level)


def _cost_level_now(amount: CostTarget, state: Any, cost: Any) -> float:
    """The share of the dense count the model has shed (dense: the first event's count before it)."""
    count = getattr(cost, amount.metric)
    dense = getattr(state.events[0], f"{amount.metric}_before") if state.events else count
    return 1.0 - count / dense if dense else 0.0


# by the amount's type: a sparsity, a threshold's tau, a cost target's share of the dense count removed
KINDS: dict[type, AmountKind] = {
    float: AmountKind(level=float, at=lambda a, level: float(level),
                      now=lambda a, state, cost: state.sparsity),
    Threshold: AmountKind(level=lambda a: a.tau, at=lambda a, level: dataclasses.replace(a, tau=level),
                          now=lambda a, state, cost: 0.0),  # each event applies tau to the model as it is
    CostTarget: AmountKind(level=lambda a: 1.0 - a.keep, at=_keep, now=_cost_level_now),
}  # fmt: skip


def kind_of(amount: Amount) -> AmountKind:
    return KINDS[float if isinstance(amount, int | float) else type(amount)]


def level_now(amount: Amount, state: Any, cost: Any) -> float:
    """Where the model stands on `amount`'s axis (`state`: a TrainState, `cost`: its ModelCost)."""
    return kind_of(amount).now(amount, state, cost)


EMPTY = -1.0  # what rank 0 reduces for an empty validation split (NaN would not reduce alike)


def agreed_accuracy(rank: int, evaluate: Callable[[], float], reducer: Any) -> float:
    """Rank 0's validation accuracy (`evaluate()`), the same on every rank through an allmax; an
    empty validation split (NaN) fails every rank alike, saying so."""
    mine = evaluate() if rank == 0 else EMPTY - 1.0
    agreed = float(reducer.allmax(np.asarray([EMPTY if mine != mine else mine]))[0])
    if agreed == EMPTY:
        raise ValueError("prune.max_accuracy_drop: the validation split is empty, so no accuracy checks an "
                         "event: raise train.validation_split")  # fmt: skip
    return agreed


def rule_amount(prune: PruneSpec) -> Amount:
    """The job's rule as one amount: its final sparsity, its threshold or its cost target."""
    if prune.threshold is not None:
        return Threshold(prune.threshold)
    if prune.target is not None:
        return CostTarget(prune.target.metric, prune.target.keep)
    return float(prune.sparsity or 0.0)


class AccuracyGuard:
    """The budget's decisions; the worker loop does the collectives and the model swaps."""

    def __init__(self, prune: PruneSpec, state: BudgetState | None = None):
        self.prune = prune
        self.state = state or BudgetState()
        self.template = rule_amount(prune)  # a retry is an amount of the rule's kind

    @property
    def pending(self) -> bool:
        return self.state.check_at is not None

    def admit(self, amount: Amount | None, level_now: float) -> Amount | None:
        """The event to apply now: a due retry, else the rule's `amount` (or one it asked for while
        a check was pending, deferred to the step after the check) capped at the limit; none while
        a check is pending or after the budget stopped."""
        s = self.state
        if s.stopped:
            return None
        if self.pending:
            if amount is not None:  # a retry's check may span a scheduled event: it waits
                s.deferred = max(s.deferred or 0.0, kind_of(amount).level(amount))
            return None
        if s.retry is not None:
            return kind_of(self.template).at(self.template, s.retry)
        if amount is None and s.deferred is not None:
            amount = kind_of(self.template).at(self.template, s.deferred)
        s.deferred = None
        if amount is None or s.limit is None:
            return amount
        level = min(kind_of(amount).level(amount), self.state.limit)
        return kind_of(amount).at(amount, level) if level > level_now + 1e-9 else None

    def before_event(self, step: int, amount: Amount, level_now: float, accuracy: float) -> None:
        """An event is about to be applied (its model kept by the caller): its check is scheduled."""
        s = self.state
        if s.reference is None or (self.prune.reference == "best" and accuracy > s.reference):
            s.reference = accuracy
        s.check_at, s.event_step = step + self.prune.recovery_steps, step
        s.level, s.level_before, s.retry = kind_of(amount).level(amount), level_now, None

    def is_due(self, step: int, final: bool) -> bool:
        """The pending check is due (the last step judges one whose window training cut short)."""
        return self.pending and (step >= self.state.check_at or final)  # type: ignore[operator]

    def judge(self, step: int, accuracy: float, final: bool = False) -> Rollback | None:
        """Pass the pending event, or undo it: the rollback, with the retry's level or none (none
        at the last step: no step is left to retry on)."""
        s, budget = self.state, self.prune.max_accuracy_drop
        s.check_at = None
        if s.reference is None or s.reference - accuracy <= budget + 1e-12:  # type: ignore[operator]
            s.retries = 0
            if self.prune.reference == "best":
                s.reference = max(s.reference or accuracy, accuracy)
            return None
        retry = None
        if self.prune.on_violation == "retry_smaller" and s.retries < self.prune.max_retries and not final:
            retry = s.level_before + (s.level - s.level_before) / 2
            s.retries += 1
        s.retry, s.limit, s.stopped = retry, retry if retry is not None else s.level_before, retry is None
        rollback = Rollback(event_step=s.event_step, step=step, accuracy=accuracy, reference=s.reference,
                            budget=budget, level=s.level, retry_level=retry)  # fmt: skip
        s.rollbacks.append(rollback)
        return rollback
