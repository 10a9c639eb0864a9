"""Live progress that costs training nothing: workers push messages to a small actor without
waiting for an answer; the driver drains it and joins the ranks' windows of each step.

`ray.train.report` blocks on a rank-0 barrier and a result queue of one that the controller polls
every 2 s (~1.9 s a call here), so it is kept for checkpoints only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from slimray.core.records import WindowReport

logger = logging.getLogger(__name__)

WINDOW = "window"  # one rank's metrics for the steps since its last window (payload: a WindowReport)
STARTED = "started"  # a rank entered its loop (payload: a dict of its set-up phases)
FINISHED = "finished"  # a rank left its loop (payload: a dict of its loop's wall-time phases)
ERROR = "error"  # the Train controller's callback: worker exceptions (payload: {rank: repr}), rank -1
RESTART = "restart"  # the controller's failure policy retries (payload: {"reason", "cause"}), rank -1


@dataclass(frozen=True)
class WorkerMessage:
    """One message from one rank of one attempt (a worker group's life between restarts)."""

    kind: str
    rank: int
    attempt: int
    step: int
    time: float  # the worker's wall clock (time.time()) when sent
    payload: WindowReport | dict[str, Any] = field(default_factory=dict)


class _Channel:
    """The actor behind a `ProgressChannel`: an append-only inbox drained by the driver."""

    def __init__(self) -> None:
        self._inbox: list[WorkerMessage] = []

    def push(self, message: WorkerMessage) -> None:
        self._inbox.append(message)

    def drain(self) -> list[WorkerMessage]:
        out, self._inbox = self._inbox, []
        return out


CHANNEL_START_TIMEOUT_S = 600.0  # as long as Ray Train gives a worker group to start (its default)
LAST_DRAIN_TIMEOUT_S = 600.0  # after the trainer ended: how long the actor may take to hand over the rest
SLOW_DRAIN_S = 30.0  # a drain unanswered this long is logged (once): the live progress lags


class ProgressChannel:
    """Driver-side owner of the channel actor; `sender()` is what workers get in their config.
    The actor lives on the driver's node: losing a worker node must not lose the progress."""

    inbox: type = _Channel  # the actor's class (a test's slow inbox injects delay)

    def __init__(self) -> None:
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        actor = ray.remote(num_cpus=0, max_concurrency=1)(self.inbox)
        self._actor = actor.options(scheduling_strategy=here).remote()
        self._started = False
        self._pending: ray.ObjectRef | None = None  # a drain asked for and not yet answered
        self._asked_at = 0.0  # when (monotonic) the pending drain was asked for
        self._warned = False

    def sender(self) -> ProgressSender:
        return ProgressSender(self._actor)

    def poll(self, wait: float) -> list[WorkerMessage]:
        """What the workers sent since the last answered drain, or nothing if the actor has not
        answered within `wait`: the drain asked for stays pending and is read by a later call, so
        an actor slowed down (a loaded machine) delays the progress, never loses or fails it."""
        self._await_start()
        if self._pending is None:
            self._pending, self._asked_at = self._actor.drain.remote(), time.monotonic()
        ready, _ = ray.wait([self._pending], timeout=wait)
        if not ready:
            self._warn_if_slow()
            return []
        answered, self._pending = self._pending, None
        return ray.get(answered)

    def drain(self, timeout: float = LAST_DRAIN_TIMEOUT_S) -> list[WorkerMessage]:
        """Everything sent so far: a pending drain's answer and then a fresh one (the last call,
        once the workers are gone); an actor silent for `timeout` is an error that says so."""
        out: list[WorkerMessage] = []
        for _ in range(2 if self._pending is not None else 1):
            messages = self.poll(timeout)
            if self._pending is not None:
                raise TimeoutError(f"the progress channel did not answer a drain in {timeout:g} s")
            out += messages
        return out

    def _warn_if_slow(self) -> None:
        waited = time.monotonic() - self._asked_at
        if waited > SLOW_DRAIN_S and not self._warned:
            self._warned = True
            logger.warning("the progress channel has not answered a drain for %.0f s: the live "
                           "progress lags (a loaded machine?); nothing sent is lost", waited)  # fmt: skip

    def _await_start(self) -> None:
        """The first call waits for the actor's process as long as a worker group may take to
        start: on a warm cluster whose idle processes are all taken, a new one imports TensorFlow
        first (30 s and more on a busy machine)."""
        if not self._started:
            ray.get(self._actor.__ray_ready__.remote(), timeout=CHANNEL_START_TIMEOUT_S)
            self._started = True

    def close(self) -> None:
        ray.kill(self._actor)


class ProgressSender:
    """Worker side: fire-and-forget pushes (a Ray actor call is queued, never awaited).

    Calls from one worker to one actor run in the order they were made.
    """

    def __init__(self, actor: Any):
        self._actor = actor

    def send(self, message: WorkerMessage) -> None:
        self._actor.push.remote(message)


@dataclass
class StepMerger:
    """Collects the windows of each (attempt, step) until every rank has sent its own.

    A new attempt (a restarted worker group) drops the older attempts' half-joined steps. Each
    window names its group's size (an elastic job's groups differ); `world` is for those that do not.
    """

    world: int
    _pending: dict[tuple[int, int], dict[int, WindowReport]] = field(default_factory=dict)
    _attempts: list[int] = field(default_factory=list)

    def add(self, message: WorkerMessage) -> Iterator[list[WindowReport]]:
        """Yields the ranks' windows (rank order) of each step this message completes."""
        if message.attempt not in self._attempts:
            self._attempts.append(message.attempt)
            self._pending = {k: v for k, v in self._pending.items() if k[0] == message.attempt}
        if message.attempt != self._attempts[-1]:
            return  # a straggler of a worker group that has been replaced
        window = message.payload
        if not isinstance(window, WindowReport):
            raise TypeError(f"a {WINDOW} message carries a WindowReport; received: {type(window).__name__}")
        key = (message.attempt, window.step)
        ranks = self._pending.setdefault(key, {})
        ranks[window.rank] = window
        if len(ranks) == (window.world or self.world):  # an elastic group's size is its own
            del self._pending[key]
            yield [ranks[r] for r in sorted(ranks)]
