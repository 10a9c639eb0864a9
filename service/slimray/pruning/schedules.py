"""Pruning schedules: `schedule(step) -> (should_prune, sparsity)`, serializable by name.

Sparsity is the fraction of the unpruned channels removed once the event at `step` is applied.
"""

from __future__ import annotations

from typing import Any

from slimray.core.registry import Configurable, Registry
from slimray.core.schedule_spec import iterative_steps, polynomial_steps


def _int(name: str, value: Any, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}. Received: {name}={value!r}")
    return value


def _fraction(name: str, value: Any, top_inclusive: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and (0.0 <= value <= 1.0 if top_inclusive else 0.0 <= value < 1.0)
    if not ok:
        bound = "[0, 1]" if top_inclusive else "[0, 1)"
        raise ValueError(f"{name} must be in {bound}. Received: {name}={value!r}")
    return float(value)


class PruningSchedule(Configurable):
    """Base schedule: when to prune and to what sparsity."""

    def __call__(self, step: int) -> tuple[bool, float]:
        raise NotImplementedError

    def events(self) -> list[tuple[int, float]]:
        """Every (step, sparsity) at which the schedule prunes, in order."""
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError

    @property
    def final_sparsity(self) -> float:
        events = self.events()
        return events[-1][1] if events else 0.0


schedules: Registry[PruningSchedule] = Registry("pruning schedule", PruningSchedule)


def get_schedule(identifier: Any) -> PruningSchedule:
    return schedules.get(identifier)


class _EventSchedule(PruningSchedule):
    """A schedule defined by its finite list of events."""

    def __call__(self, step: int) -> tuple[bool, float]:
        step = _int("step", step)
        current = 0.0
        for at, sparsity in self.events():
            if at == step:
                return True, sparsity
            if at < step:
                current = sparsity
        return False, current


@schedules.register("one_shot")
class OneShot(_EventSchedule):
    """Prune once, at `step`, to `sparsity`."""

    def __init__(self, step: int, sparsity: float):
        self.step = _int("step", step)
        self.sparsity = _fraction("sparsity", sparsity)

    def events(self):
        return [(self.step, self.sparsity)]

    def get_config(self):
        return {"step": self.step, "sparsity": self.sparsity}


@schedules.register("iterative")
class Iterative(_EventSchedule):
    """Prune every `every` steps from `start` to `end`, in equal sparsity increments."""

    def __init__(self, start: int, end: int, every: int, sparsity: float):
        self.start = _int("start", start)
        self.end = _int("end", end)
        self.every = _int("every", every, minimum=1)
        if self.end < self.start:
            raise ValueError(f"end must be >= start ({start}). Received: end={end!r}")
        self.sparsity = _fraction("sparsity", sparsity)

    def events(self):
        steps = iterative_steps(self.start, self.end, self.every)
        n = len(steps)
        return [(s, self.sparsity * (k + 1) / n) for k, s in enumerate(steps)]

    def get_config(self):
        return {
            "start": self.start,
            "end": self.end,
            "every": self.every,
            "sparsity": self.sparsity,
        }


@schedules.register("polynomial")
class PolynomialDecay(_EventSchedule):
    """Zhu & Gupta (2017): s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (t1 - t0)) ** power,
    pruning every `frequency` steps from `begin_step` and always at `end_step`."""

    def __init__(
        self,
        initial_sparsity: float,
        final_sparsity: float,
        begin_step: int,
        end_step: int,
        power: float = 3.0,
        frequency: int = 100,
    ):
        self.initial_sparsity = _fraction("initial_sparsity", initial_sparsity)
        self.final_sparsity_ = _fraction("final_sparsity", final_sparsity)
        self.begin_step = _int("begin_step", begin_step)
        self.end_step = _int("end_step", end_step)
        if self.end_step <= self.begin_step:
            raise ValueError(f"end_step must be > begin_step ({begin_step}). Received: end_step={end_step!r}")
        if not isinstance(power, (int, float)) or isinstance(power, bool) or power <= 0:
            raise ValueError(f"power must be a positive number. Received: power={power!r}")
        self.power = float(power)
        self.frequency = _int("frequency", frequency, minimum=1)

    def sparsity_at(self, step: int) -> float:
        t = min(max(step, self.begin_step), self.end_step)
        progress = (t - self.begin_step) / (self.end_step - self.begin_step)
        s_i, s_f = self.initial_sparsity, self.final_sparsity_
        return s_f + (s_i - s_f) * (1.0 - progress) ** self.power

    def events(self):
        steps = polynomial_steps(self.begin_step, self.end_step, self.frequency)
        return [(s, self.sparsity_at(s)) for s in steps]

    def get_config(self):
        return {
            "initial_sparsity": self.initial_sparsity,
            "final_sparsity": self.final_sparsity_,
            "begin_step": self.begin_step,
            "end_step": self.end_step,
            "power": self.power,
            "frequency": self.frequency,
        }
