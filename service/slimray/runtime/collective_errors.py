"""A worker's collectives that time out or lose their peers, turned into errors that name the rank
and the step (worker side: it reads TensorFlow's error types)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import tensorflow as tf

from slimray.runtime.failures import CollectiveTimeoutError, PeerUnreachableError, first_line


@contextlib.contextmanager
def collective_errors(rank: int, step: Callable[[], int], deadline: float) -> Iterator[None]:
    """A collective that timed out (a peer never joined) or whose transport gave up on a peer
    fails this worker, and so the group, with an error saying so: the ranks that do not raise
    it are the hung ones. `step()`: the step the worker was at when it failed."""
    try:
        yield
    except tf.errors.DeadlineExceededError as err:
        raise CollectiveTimeoutError(
            f"rank {rank}: a collective at step {step()} got no answer from its peers within {deadline:g} s "
            "(twice failure.collective_timeout_seconds)"
        ) from err
    except tf.errors.UnavailableError as err:  # measured: a SIGSTOPped peer, under load
        raise PeerUnreachableError(
            f"rank {rank}: a collective at step {step()} lost its peers ({first_line(err)})"
        ) from err
