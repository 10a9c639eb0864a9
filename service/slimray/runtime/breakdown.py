"""Where a job's wall time went: every second from `run_job`'s start to its report, by phase.

Workers time their loop (data waits, steps, tracing, prune events, checkpoints, evaluation); the
driver times what surrounds it (Ray start, data loading, worker start-up and shutdown, export).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

# What each phase holds; the report's breakdown has exactly these keys plus `total`.
PHASES = {
    "startup": "Ray start, the worker group's start, TensorFlow and model set-up in the workers",
    "data": "loading the data set and waiting for batches inside the loop",
    "tracing": "tracing the step function of each model (the first, and after each prune event)",
    "training": "training steps",
    "prune_events": "scoring, allreduce, agreement and surgery",
    "checkpoints": "writing checkpoints and handing them to Ray Train; the accuracy budget's copy of the "
    "model before an event, and its read when the event is undone",
    "evaluation": "validation passes on rank 0",
    "progress": "building and sending progress messages (they are not awaited)",
    "shutdown": "the last upload, the worker group's teardown",
    "export": "model.keras, the SavedModel, its evaluation and the report files",
    "other": "what no phase above measured (loop bookkeeping, restarts)",
}


@dataclass
class PhaseClock:
    """Seconds per named phase, accumulated; `with clock.phase("x"):` times one stretch."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] += seconds

    def snapshot(self) -> dict[str, float]:
        return dict(self.seconds)


@dataclass(frozen=True)
class WallTimeBreakdown:
    """Seconds per phase (see `PHASES`); they add up to `total`, the job's wall time."""

    startup: float
    data: float
    tracing: float
    training: float
    prune_events: float
    checkpoints: float
    evaluation: float
    progress: float
    shutdown: float
    export: float
    other: float
    total: float

    @property
    def fixed_cost(self) -> float:
        """Everything that is not a training step."""
        return self.total - self.training

    def to_dict(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in asdict(self).items()}

    @classmethod
    def assemble(
        cls,
        driver: Mapping[str, float],
        worker: Mapping[str, float],
        total: float,
    ) -> WallTimeBreakdown:
        """The driver's phases plus rank 0's (each times its own stretches, none twice);
        whatever of `total` none of them measured is `other`."""
        names = [name for name in PHASES if name != "other"]
        phases = {name: float(driver.get(name, 0.0)) + float(worker.get(name, 0.0)) for name in names}
        measured = sum(phases.values())
        phases["other"] = max(0.0, total - measured)
        return cls(**phases, total=total)
