"""Window accounting: what one worker trained since its last progress message, turned into the
metrics of a `WindowReport` (throughput leaves out tracing, prune events, checkpoints, ...)."""

from __future__ import annotations

import hashlib
import resource
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# phases that a window's throughput leaves out: they are not training steps or data waits
NOT_THROUGHPUT = ("tracing", "prune_events", "checkpoints", "evaluation", "progress")


def peak_memory_bytes() -> int:
    """Peak resident set size of this process (Linux reports kilobytes)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def weights_digest(model: Any) -> str:
    """A short digest of every weight's bytes: equal on all ranks when gradients were averaged."""
    digest = hashlib.sha256()
    for weight in model.weights:
        digest.update(np.ascontiguousarray(np.asarray(weight)).tobytes())
    return digest.hexdigest()[:16]


@dataclass
class Window:
    """One worker's training progress since its last window message; losses and hits stay
    tensors until the window closes, so no step waits for the host."""

    phases_at_start: dict[str, float]
    start: float = field(default_factory=time.perf_counter)
    samples: int = 0
    steps: int = 0
    compute: float = 0.0
    losses: list[Any] = field(default_factory=list)
    corrects: list[Any] = field(default_factory=list)

    def add(self, samples: int, seconds: float, loss: Any, correct: Any) -> None:
        self.samples += samples
        self.steps += 1
        self.compute += seconds
        self.losses.append(loss)
        self.corrects.append(correct)

    def metrics(self, phases_now: dict[str, float]) -> dict[str, float | int]:
        """The window's `WindowReport` fields: samples/s over the wall time its steps and data
        waits took, mean step time, loss and accuracy, and its count of steps."""
        excluded = sum(phases_now.get(p, 0.0) - self.phases_at_start.get(p, 0.0) for p in NOT_THROUGHPUT)
        wall = time.perf_counter() - self.start - excluded
        if not self.steps:
            return {"samples_per_second": 0.0, "step_time": 0.0, "loss": float("nan"),
                    "accuracy": float("nan"), "window_steps": 0}  # fmt: skip
        return {
            "samples_per_second": self.samples / wall if wall > 0 else 0.0,
            "step_time": self.compute / self.steps,
            "loss": float(np.sum([float(v) for v in self.losses])) / self.steps,
            "accuracy": float(np.sum([float(v) for v in self.corrects])) / self.samples,
            "window_steps": self.steps,
        }
