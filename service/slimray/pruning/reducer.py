"""The allreduce that makes every worker score channels on the same numbers.

Pruning code sees only this protocol; the runtime passes a TF-collective implementation.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Reducer(Protocol):
    """Sums a float vector across all workers; every worker receives the identical result."""

    world_size: int

    def allreduce(self, values: np.ndarray) -> np.ndarray: ...


class IdentityReducer:
    """A single worker: the local vector is already the global one."""

    world_size = 1

    def allreduce(self, values: np.ndarray) -> np.ndarray:
        return np.array(values, dtype=np.float64, copy=True)
