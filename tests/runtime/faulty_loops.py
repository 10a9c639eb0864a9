"""Worker loops that inject faults (imported by Ray's workers from the test tree): the
production `WorkerLoop` has no fault hooks; these subclasses override one step each."""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from pathlib import Path

import tensorflow as tf

from slimray.pruning import PrunePlan
from slimray.runtime.worker import WorkerLoop

KILL_MARKER_ENV = "SLIMRAY_TEST_KILL_MARKER"


class PerturbedMaskLoop(WorkerLoop):
    """Rank 1 flips one channel of its mask at the first prune event: the ranks disagree."""

    def choose_mask(self, sparsity, batch, graph):
        scored = super().choose_mask(sparsity, batch, graph)
        plan = scored.plan
        if self.rank != 1 or self.state.events:
            return scored
        gid = sorted(plan.keep)[0]
        kept = list(plan.keep[gid])
        kept[-1] = sorted(set(range(plan.sizes[gid])) - set(kept))[0]
        return dataclasses.replace(
            scored, plan=PrunePlan({**plan.keep, gid: tuple(sorted(kept))}, plan.sizes)
        )


class KilledWorkerLoop(WorkerLoop):
    """Rank 1 is SIGKILLed once at step 45, 3 s after the step-31 checkpoint could register
    (the marker file, named by the job's environment, makes it happen only once)."""

    STEP, DELAY = 45, 3.0

    def train_step(self, x, y):
        marker = Path(os.environ[KILL_MARKER_ENV])
        if self.rank == 1 and self.state.step == self.STEP and not marker.exists():
            marker.write_text(str(os.getpid()))
            time.sleep(self.DELAY)
            os.kill(os.getpid(), signal.SIGKILL)
        super().train_step(x, y)


class PacedLoop(WorkerLoop):
    """Every step takes PAUSE seconds longer: a small job lasts long enough for a test to act on
    it mid-run (kill a node after a checkpoint)."""

    PAUSE = 0.25

    def train_step(self, x, y):
        time.sleep(self.PAUSE)
        super().train_step(x, y)


class ScaledGradientsLoop(WorkerLoop):
    """Rank 1 multiplies its local gradients by FACTOR before the backend reduces them: averaged
    gradients keep the ranks identical but change the run; unreduced ones split the ranks."""

    FACTOR = 3.0

    def make_step(self):
        step = super().make_step()
        if self.rank != 1:
            return step
        local = step.local_gradients

        def scaled(x, y):
            loss, correct, grads = local(x, y)
            return loss, correct, [g * self.FACTOR for g in grads]

        step.gradients = tf.function(scaled)  # `run` calls it when it first traces
        return step


class _DriftingReducer:
    """Rank 1's copy of the first allreduce result (the channel scores) comes back reversed, as
    if its reduction had gone wrong; min and max (the agreement check) stay honest."""

    def __init__(self, inner):
        self.inner, self.drifted = inner, False

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def allreduce(self, values):
        out = self.inner.allreduce(values)
        if not self.drifted:
            self.drifted = True
            return out[::-1].copy()
        return out


class DriftingScoresLoop(WorkerLoop):
    """Rank 1 plans from perturbed global scores at the first prune event."""

    def make_reducer(self):
        reducer = super().make_reducer()
        return _DriftingReducer(reducer) if self.rank == 1 else reducer


class CrashingLoop(WorkerLoop):
    """Every rank raises at STEP, DELAY s after the previous checkpoint could register: with
    `max_failures: 0` the job fails there, leaving its checkpoints (a driver lost mid-run)."""

    STEP, DELAY = 12, 2.0

    def train_step(self, x, y):
        if self.state.step == self.STEP:
            time.sleep(self.DELAY)
            raise RuntimeError(f"injected crash at step {self.STEP}")
        super().train_step(x, y)
