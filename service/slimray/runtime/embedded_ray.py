"""An embedded Ray (a new one-machine cluster for one job) whose start survives a loaded machine:
Ray gives a new raylet a fixed 30 s to register with its GCS, then fails the whole job."""

from __future__ import annotations

import logging
import time
from typing import Any

import ray

log = logging.getLogger(__name__)

# Ray 2.60 (`ray/_private/node.py`) waits a fixed 30 s, not configurable, for the new raylet to
# register with the GCS. On a loaded machine that wait ran out though nothing was wrong (the
# project's CI: 2 cores, two test processes, once in 40 min of tests; here once twice in a row,
# the second start slower than the first). Three tries, each after a pause that lets the load ease.
START_ATTEMPTS = 3
PAUSE_SECONDS = 5.0  # before the second try; twice that before the third
# what Ray's plain `Exception` says when that wait runs out (it has no type of its own)
RAYLET_TIMEOUT = "timed out during startup"


class RayStartError(RuntimeError):
    """The embedded Ray's raylet never registered with its GCS, on every attempt."""

    def __init__(self, attempts: int, cause: str):
        super().__init__(
            f"the embedded Ray did not start: its raylet did not register with its GCS within Ray's "
            f"30 s, {attempts} times (the machine is likely overloaded; Ray said: {cause})"
        )


def start_embedded_ray(**init_kwargs: Any) -> None:
    """`ray.init(address="local", **init_kwargs)`, tried again (up to START_ATTEMPTS) if the raylet
    was slow to register. A failed start's processes are killed first: a retry must not compete with them."""
    for attempt in range(1, START_ATTEMPTS + 1):
        before = _children()
        try:
            ray.init(address="local", **init_kwargs)
            return
        except Exception as exc:  # Ray raises a bare Exception for this; anything else propagates
            if RAYLET_TIMEOUT not in str(exc):
                raise
            stopped = _kill_new_processes(before) if before is not None else 0
            ray.shutdown()
            if attempt == START_ATTEMPTS:
                raise RayStartError(attempts=attempt, cause=str(exc)) from exc
            log.warning("embedded Ray start %d of %d timed out (%s); stopped its %d processes, "
                        "starting again", attempt, START_ATTEMPTS, exc, stopped)  # fmt: skip
            time.sleep(PAUSE_SECONDS * attempt)


def _children() -> set[int] | None:
    """The pids of this process's direct children; None without psutil (the image has none: the
    failed start's processes are then left to Ray's reaper, which ends them with this process)."""
    try:
        import psutil  # lazy: only a failed start needs it
    except ImportError:
        return None
    return {child.pid for child in psutil.Process().children()}


def _kill_new_processes(before: set[int]) -> int:
    """SIGKILL every child not in `before` (a failed start's GCS, raylet, reaper) with its own
    descendants (the raylet's agents and workers), and wait for them; how many there were. The
    children this process had before the start, and theirs, are left alone."""
    import psutil  # lazy: only a failed start needs it (`_children` found it)

    started = [child for child in psutil.Process().children() if child.pid not in before]
    new = []
    for child in started:
        try:
            new += [child, *child.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
    for child in new:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(new, timeout=10)
    return len(new)
