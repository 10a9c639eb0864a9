"""A bound on collectives that have no timeout of their own: MultiWorkerMirroredStrategy broadcasts
each new variable's initial value from rank 0 with none, so a live peer that never joins (a stuck
step, a dead NIC) would hold a restore or a prune event's rebuild for ever. Loaded only in workers."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import tensorflow as tf
from tensorflow.python.eager import context  # the one private TensorFlow API slimray uses


@contextlib.contextmanager
def collectives_bounded(seconds: float | None, what: str) -> Iterator[None]:
    """Run the block; if it is still running after `seconds`, abort this process's collectives, so
    the op that waits raises `DeadlineExceededError` (the worker fails, and its group restarts:
    TensorFlow refuses collectives after an abort). None or 0: no bound."""
    if not seconds:
        yield
        return
    lock, done = threading.Lock(), threading.Event()

    def watch() -> None:
        if done.wait(seconds):
            return
        with lock:  # the block cannot finish between this check and the abort
            if not done.is_set():
                message = f"{what}: timed out waiting for other workers after {seconds:g} s"
                context.context().abort_collective_ops(tf.errors.DEADLINE_EXCEEDED, message)

    threading.Thread(target=watch, name=f"collectives-bounded({what})", daemon=True).start()
    try:
        yield
    finally:
        with lock:
            done.set()
