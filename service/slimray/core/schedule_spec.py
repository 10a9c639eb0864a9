"""When a job prunes: the schedule kinds of a spec (one-shot, iterative, polynomial, auto) and the
steps each prunes at, one copy for the spec, the service's event cap and `slimray.pruning.schedules`
(`auto` decides its steps while training: `slimray.runtime.early_bird`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def iterative_steps(start: int, end: int, every: int) -> list[int]:
    """The steps an iterative schedule prunes at: one copy for the spec (which counts them, the
    service caps a job's events by it) and `slimray.pruning.schedules` (which prunes at them)."""
    return list(range(start, end + 1, every))


def polynomial_steps(begin: int, end: int, frequency: int) -> list[int]:
    """The steps a polynomial schedule prunes at: every `frequency` from `begin`, and `end`."""
    steps = list(range(begin, end + 1, frequency))
    return steps if steps[-1] == end else [*steps, end]


class OneShotSpec(_Strict):
    kind: Literal["one_shot"] = "one_shot"
    step: int = Field(ge=0)

    def event_steps(self) -> list[int]:
        return [self.step]

    def event_count(self) -> int:
        return 1


class IterativeSpec(_Strict):
    kind: Literal["iterative"] = "iterative"
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    every: int = Field(ge=1)

    @model_validator(mode="after")
    def _order(self) -> IterativeSpec:
        if self.end < self.start:
            raise ValueError(f"end ({self.end}) must be >= start ({self.start})")
        return self

    def event_steps(self) -> list[int]:
        return iterative_steps(self.start, self.end, self.every)

    def event_count(self) -> int:
        return len(self.event_steps())


class PolynomialSpec(_Strict):
    kind: Literal["polynomial"] = "polynomial"
    begin_step: int = Field(ge=0)
    end_step: int = Field(ge=1)
    frequency: int = Field(100, ge=1)
    power: float = Field(3.0, gt=0)
    initial_sparsity: float = Field(0.0, ge=0, lt=1)

    @model_validator(mode="after")
    def _order(self) -> PolynomialSpec:
        if self.end_step <= self.begin_step:
            raise ValueError(f"end_step ({self.end_step}) must be > begin_step ({self.begin_step})")
        return self

    def event_steps(self) -> list[int]:
        return polynomial_steps(self.begin_step, self.end_step, self.frequency)

    def event_count(self) -> int:
        return len(self.event_steps())


class AutoSpec(_Strict):
    """No steps to tune (Early-Bird, You et al. 2020): every `every` steps the allreduced scores
    choose the first event's mask; once it changes in less than `epsilon` of the channels for
    `window` checks in a row (or at `latest`), `events` events `spacing` steps apart reach the amount."""

    kind: Literal["auto"] = "auto"
    every: int = Field(10, ge=1, description="Steps between two checks of the mask.")
    epsilon: float = Field(
        0.05, gt=0, lt=1, allow_inf_nan=False,
        description="The share of channels whose keep-or-remove choice may change between two checks "
        "for the mask to count as settled (the normalized Hamming distance).",
    )  # fmt: skip
    window: int = Field(3, ge=1, description="Settled checks in a row before pruning starts.")
    events: int = Field(3, ge=1, le=100, description="Events that reach the amount, in equal steps.")
    spacing: int | None = Field(
        None, ge=1,
        description="Steps between events; default: prune.recovery_steps with an accuracy budget (each "
        "event is checked before the next), else `every`.",
    )  # fmt: skip
    latest: int | None = Field(
        None, ge=0,
        description="The step pruning starts at if the mask has not settled by then; default: half "
        "of training, earlier if the events (and an accuracy budget's last check) would not fit after it.",
    )  # fmt: skip

    def event_steps(self) -> list[int]:
        """None known before training: the job decides them (`early_bird`)."""
        return []

    def gap(self, recovery_steps: int | None) -> int:
        """Steps between events: `spacing`, else a budget's recovery (None: no budget), else `every`."""
        return self.spacing or recovery_steps or self.every

    def span(self, recovery_steps: int | None) -> int:
        """Steps from the first event to the end of the last one's check (1: the step after it)."""
        return (self.events - 1) * self.gap(recovery_steps) + (recovery_steps or 1)

    def latest_start(self, total_steps: int, recovery_steps: int | None) -> int:
        """The step pruning starts at at the latest: `latest`, else half of training, earlier if
        the events would not fit after it."""
        if self.latest is not None:
            return self.latest
        return max(0, min(total_steps // 2, total_steps - self.span(recovery_steps)))

    def event_count(self) -> int:
        return self.events

    def fit_problem(self, total_steps: int, recovery_steps: int | None) -> str | None:
        """Why its events (and a budget's last check) cannot fit after its latest start; None: they fit."""
        start, span = self.latest_start(total_steps, recovery_steps), self.span(recovery_steps)
        if start + span <= total_steps:
            return None
        return (
            f"prune.schedule: {self.events} events {self.gap(recovery_steps)} steps apart (and the last "
            f"one's {'check' if recovery_steps else 'retrace'}) take {span} steps, which do not fit between "
            f"the latest start (step {start}) and train.steps {total_steps}: fewer events, less spacing, an "
            "earlier latest, or more steps"
        )


ScheduleSpec = Annotated[OneShotSpec | IterativeSpec | PolynomialSpec | AutoSpec, Field(discriminator="kind")]
