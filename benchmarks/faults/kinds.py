"""The faults, each injected from outside the job: by PID (SIGKILL, SIGSTOP), by removing a node,
by editing checkpoint files. An injector waits for its moment on the run directory and the
cluster's process table, acts once, and says what it did; it never touches the job's code."""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psutil

from faults.cluster import LocalCluster
from faults.procs import is_gone, kill_pid, send
from faults.rundir import (
    Checkpoint,
    newest_checkpoint,
    registered_checkpoints,
    truncate_largest_file,
    unregistered_checkpoints,
)


@dataclass(frozen=True)
class Plan:
    """When and how long: `window` the random delay after the first checkpoint (s), `hold` how
    long a stopped worker stays stopped (longer than the collective timeout)."""

    window: float
    hold: float
    first_checkpoint_timeout: float = 600.0


@dataclass
class Injection:
    injected: bool = False
    what: str = ""
    at_seconds: float | None = None  # since the job started
    after_step: int | None = None  # the newest registered checkpoint's step when it was injected
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Target:
    """What an injector acts on: the cluster, the running job, and its random draws."""

    cluster: LocalCluster
    job: Any  # CliJob or ServiceJob: run_dir, started, running()
    rng: random.Random
    plan: Plan
    stop: threading.Event = field(default_factory=threading.Event)

    def elapsed(self) -> float:
        return time.monotonic() - self.job.started

    def workers(self) -> list[psutil.Process]:
        return self.cluster.training_workers()

    def waiting(self) -> bool:
        return not self.stop.is_set() and self.job.running()

    def first_checkpoint(self) -> Checkpoint | None:
        deadline = time.monotonic() + self.plan.first_checkpoint_timeout
        while self.waiting() and time.monotonic() < deadline:
            if found := registered_checkpoints(self.job.run_dir):
                return found[0]
            time.sleep(0.2)
        return None

    def random_moment(self) -> Checkpoint | None:
        """A random moment after the first registered checkpoint: the newest checkpoint then."""
        if self.first_checkpoint() is None:
            return None
        self.stop.wait(self.rng.uniform(0, self.plan.window))
        return newest_checkpoint(self.job.run_dir) if self.waiting() else None

    def pick_worker(self) -> psutil.Process | None:
        workers = self.workers()
        return self.rng.choice(workers) if workers else None

    def done(self, what: str, checkpoint: Checkpoint | None, **detail: Any) -> Injection:
        step = checkpoint.step if checkpoint else None
        return Injection(True, what, round(self.elapsed(), 1), step, detail)


def no_fault(t: Target) -> Injection:
    """The uninterrupted run: only when its first checkpoint came (the random window's base)."""
    checkpoint = t.first_checkpoint()
    return Injection(False, "none", None, None, {"first_checkpoint_seconds": round(t.elapsed(), 1)
                                                 if checkpoint else None})  # fmt: skip


def kill_worker(t: Target) -> Injection:
    if (checkpoint := t.random_moment()) is None or (victim := t.pick_worker()) is None:
        return Injection(detail={"why": "the job ended before the moment came"})
    send(victim, signal.SIGKILL)
    return t.done("SIGKILL a training worker", checkpoint, pid=victim.pid)


def hang_worker(t: Target) -> Injection:
    """SIGSTOP a worker for `hold` s; detected when the system ends it in that time (the group
    failed and was restarted); otherwise it is continued (SIGCONT) and the hang went unseen."""
    if (checkpoint := t.random_moment()) is None or (victim := t.pick_worker()) is None:
        return Injection(detail={"why": "the job ended before the moment came"})
    send(victim, signal.SIGSTOP)
    stopped = time.monotonic()
    injection = t.done("SIGSTOP a training worker", checkpoint, pid=victim.pid)
    while time.monotonic() - stopped < t.plan.hold and not is_gone(victim) and not t.stop.is_set():
        time.sleep(0.5)
    ended = is_gone(victim)
    if not ended:
        send(victim, signal.SIGCONT)
    injection.detail.update(ended_by_system=ended, stopped_seconds=round(time.monotonic() - stopped, 1))
    return injection


SETTLE_SECONDS = 8.0  # a written checkpoint is registered by then (health checks: 2x collective timeout)
FREEZE_TRIES = 5


def freeze_settled(t: Target) -> list[psutil.Process] | None:
    """SIGSTOP the workers at a moment when Ray Train has registered every checkpoint folder on
    disk (none in flight, so the newest registered one is the one a restart meets); a group
    frozen mid-report is thawed and tried again. The frozen workers, or None."""
    for _ in range(FREEZE_TRIES):
        if not t.waiting() or not (workers := t.workers()):
            return None
        for worker in workers:
            send(worker, signal.SIGSTOP)
        deadline = time.monotonic() + SETTLE_SECONDS
        t.stop.wait(1.0)
        while unregistered_checkpoints(t.job.run_dir) and time.monotonic() < deadline:
            t.stop.wait(0.5)
        if not unregistered_checkpoints(t.job.run_dir):
            return workers
        for worker in workers:
            send(worker, signal.SIGCONT)
        t.stop.wait(2.0)
    return None


def corrupt_then_kill(t: Target) -> Injection:
    """Freeze the workers (no checkpoint is written meanwhile, none in flight), truncate the newest
    registered checkpoint, SIGKILL one worker, continue the others: the restart meets it.
    Regression: a checkpoint registered after a fixed 3 s settle (a loaded CI machine) was newer
    than the truncated one, so the restart never met the damage."""
    if t.random_moment() is None or (workers := freeze_settled(t)) is None:
        return Injection(detail={"why": "the job ended (or never settled) before the moment came"})
    checkpoint = newest_checkpoint(t.job.run_dir)
    damaged = truncate_largest_file(checkpoint)
    victim = t.rng.choice(workers)
    send(victim, signal.SIGKILL)
    for worker in workers:
        send(worker, signal.SIGCONT)
    return t.done("truncate the newest checkpoint, SIGKILL a worker", checkpoint, pid=victim.pid,
                  truncated=str(damaged.relative_to(t.job.run_dir)))  # fmt: skip


def lose_node(t: Target) -> Injection:
    """Remove the worker node of a random training worker, for good (its raylet SIGKILLed)."""
    if (checkpoint := t.random_moment()) is None or (victim := t.pick_worker()) is None:
        return Injection(detail={"why": "the job ended before the moment came"})
    node = next((n.name for n in t.cluster.nodes.values() if victim.pid in {p.pid for p in n.processes()}),
                t.cluster.worker_names()[-1])  # fmt: skip
    t.cluster.remove(node)
    return t.done("remove a worker node for good", checkpoint, node=node)


def kill_driver(t: Target) -> Injection:
    if (checkpoint := t.random_moment()) is None or (pid := t.job.driver_pid()) is None:
        return Injection(detail={"why": "no running driver after a checkpoint"})
    kill_pid(pid)
    return t.done("SIGKILL the job's driver", checkpoint, pid=pid)


def kill_at_start(t: Target) -> Injection:
    """SIGKILL a worker as soon as the group's worker processes appear, before any checkpoint."""
    while t.waiting():
        if (victim := t.pick_worker()) is not None and not registered_checkpoints(t.job.run_dir):
            send(victim, signal.SIGKILL)
            return t.done("SIGKILL a worker while the group starts", None, pid=victim.pid)
        time.sleep(0.1)
    return Injection(detail={"why": "the job ended before a worker appeared"})


@dataclass(frozen=True)
class Fault:
    key: str
    name: str
    title: str
    goal: str
    inject: Callable[[Target], Injection]
    via_service: bool = False
    elastic: bool = False  # run with the elastic worker range, where the spec has it
    needs_detection: bool = False  # recovered only if the system itself ended the stopped worker

    def run(self, target: Target, limit: float) -> tuple[Any, Injection]:
        """The target's job run to its end (at most `limit` s) while this fault is injected from
        a thread: (the job's end, what was injected). The benchmark and the e2e tests share it."""
        found: dict[str, Injection] = {}
        thread = threading.Thread(target=lambda: found.update(i=self.inject(target)), daemon=True)
        thread.start()
        end = target.job.wait(limit)
        target.stop.set()
        thread.join(60)
        return end, found.get("i", Injection())


BASELINE = Fault("-", "baseline", "uninterrupted", "-", no_fault)
FAULTS = {f.key: f for f in (
    Fault("a", "kill_worker", "SIGKILL a random training worker at a random step after the first checkpoint",
          "≥ 10/10 recovered", kill_worker),
    Fault("b", "hang_worker", "SIGSTOP a worker for longer than the collective timeout",
          "10/10 detected and recovered", hang_worker, needs_detection=True),
    Fault("c", "corrupt_checkpoint", "truncate the newest checkpoint, then SIGKILL a worker",
          "≥ 10/10 recovered", corrupt_then_kill),
    Fault("d", "lose_node", "remove a worker node for good",
          "finishes on the remaining workers", lose_node, elastic=True),
    Fault("e", "kill_driver", "SIGKILL the driver of a job run by the service",
          "resumed by the service", kill_driver, via_service=True),
    Fault("f", "kill_at_start", "SIGKILL a worker while the group starts (before the first checkpoint)",
          "≥ 10/10 recovered", kill_at_start),
)}  # fmt: skip


def fault(name: str) -> Fault:
    """By letter (a-f) or by name; the error lists both."""
    for f in FAULTS.values():
        if name in (f.key, f.name):
            return f
    known = ", ".join(f"{f.key} ({f.name})" for f in FAULTS.values())
    raise ValueError(f"--faults: unknown fault {name!r}; known: {known}")
