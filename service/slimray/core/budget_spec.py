"""`prune.max_accuracy_drop`: an accuracy budget that undoes a prune event the model cannot afford
(`slimray.runtime.accuracy_guard`), with the settings of its check: when, against what, and then what."""

from __future__ import annotations

import itertools
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ON_VIOLATION = ("retry_smaller", "stop")
REFERENCES = ("dense", "best")


class AccuracyBudgetFields(BaseModel):
    """The budget's fields of `PruneSpec` (mixed in there): all but `max_accuracy_drop` are
    ignored without it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_accuracy_drop: float | None = Field(
        None, gt=0, lt=1, allow_inf_nan=False,
        description="Validation accuracy (a fraction: 0.01 is one point) the job may lose to pruning. "
        "`recovery_steps` after each event rank 0 validates; an event that lost more is rolled back "
        "on every worker (architecture, weights, optimizer state).",
    )  # fmt: skip
    recovery_steps: int = Field(
        20, ge=1, description="Steps trained after an event before its accuracy is checked."
    )
    on_violation: Literal[ON_VIOLATION] = Field(  # type: ignore[valid-type]
        "retry_smaller",
        description="After a rollback: retry with half the event's increment (at most `max_retries` "
        "times, then stop), or stop pruning.",
    )
    max_retries: int = Field(2, ge=0, le=10, description="Smaller retries after a rollback, then stop.")
    reference: Literal[REFERENCES] = Field(  # type: ignore[valid-type]
        "dense",
        description="What the drop counts from: the dense model's accuracy at the first event, or the "
        "best accuracy validated before an event or at a passed check.",
    )

    @property
    def checked_recovery(self) -> int | None:
        """`recovery_steps` when a budget checks each event (they then space an auto schedule's
        events), else None."""
        return self.recovery_steps if self.max_accuracy_drop is not None else None

    @model_validator(mode="after")
    def _checks_fit_the_schedule(self) -> Any:
        """Each event's check comes before the next event: a check after it would judge two."""
        schedule = getattr(self, "schedule", None)
        if self.max_accuracy_drop is None or schedule is None:
            return self
        if getattr(schedule, "spacing", None) is not None and schedule.spacing < self.recovery_steps:
            raise ValueError(
                f"recovery_steps {self.recovery_steps} is longer than schedule.spacing {schedule.spacing}: "
                "each event's accuracy check must come before the next event (leave spacing out: an "
                "auto schedule then spaces its events by recovery_steps)"
            )
        steps = sorted(schedule.event_steps())
        gaps = [(b - a, a, b) for a, b in itertools.pairwise(steps)]
        if gaps and min(gaps)[0] < self.recovery_steps:
            gap, a, b = min(gaps)
            raise ValueError(
                f"recovery_steps {self.recovery_steps} is longer than the {gap} steps between the "
                f"schedule's events at steps {a} and {b}: each event's accuracy check must come before "
                "the next event (fewer recovery steps, or events further apart; a retry's check may "
                "still span an event, which then waits for it)"
            )
        return self

    def budget_problem(self, steps: list[int], total_steps: int | None, split: float) -> str | None:
        """Why the budget could not judge its events: no validation data, or the last event's check
        after training ends (a length in epochs is known once the data is: then the last step
        checks a pending event). None: it can."""
        if self.max_accuracy_drop is None:
            return None
        if split <= 0:
            return ("prune.max_accuracy_drop needs validation data to check each event against, but "
                    "train.validation_split is 0")  # fmt: skip
        if not steps or total_steps is None:
            return None
        if max(steps) + self.recovery_steps <= total_steps:
            return None
        last = max(steps)
        return (f"prune.recovery_steps: the last event is at step {last}, so its accuracy check "
                f"({self.recovery_steps} steps later) comes after train.steps {total_steps}")  # fmt: skip
