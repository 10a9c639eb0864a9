"""When a job prunes: the schedule kinds of a spec (one-shot, iterative, polynomial) and the steps
each prunes at, one copy for the spec, the service's event cap and `slimray.pruning.schedules`."""

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


ScheduleSpec = Annotated[OneShotSpec | IterativeSpec | PolynomialSpec, Field(discriminator="kind")]
