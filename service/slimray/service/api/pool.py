"""Whether the worker-thread pool that runs sync routes still makes progress (issue 23 H1): a
heartbeat runs a no-op in it every `interval` s; /healthz fails once none has run for `bound` s,
so a pool wedged by hung calls gets the pod restarted instead of answering "ok" forever."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from starlette.concurrency import run_in_threadpool

WEDGED_FLOOR_SECONDS = 60.0


def wedged_bound(ray_timeout_seconds: float) -> float:
    """How long no thread may be free before the pool counts as wedged: well above any sync
    route's own wait, a few Ray calls of `ray_timeout_seconds` each."""
    return max(WEDGED_FLOOR_SECONDS, 4 * ray_timeout_seconds)


def _noop() -> None:
    """What the heartbeat runs in the pool: only getting a thread is measured."""


class PoolWatch:
    """The time the pool last ran the heartbeat's no-op; `wedged` once that is over `bound` s ago."""

    def __init__(self, bound: float, interval: float = 0.5):
        self.bound, self.interval = bound, interval
        self.last_progress = time.monotonic()

    def stalled_seconds(self) -> float:
        return time.monotonic() - self.last_progress

    def wedged(self) -> bool:
        return self.stalled_seconds() > self.bound

    async def _beat(self) -> None:
        while True:  # one no-op at a time: a wedged pool never holds more than one waiting
            await run_in_threadpool(_noop)
            self.last_progress = time.monotonic()
            await asyncio.sleep(self.interval)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[PoolWatch]:
        """The heartbeat runs on the event loop while the block does (the app's lifespan)."""
        self.last_progress = time.monotonic()
        task = asyncio.create_task(self._beat(), name="slimray-pool-watch")
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
