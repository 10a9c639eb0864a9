"""The reductions that make every worker score channels on the same numbers and prove it holds
the same mask. Pruning and the runtime see only this protocol; backends implement it (TF
collectives today)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Reducer(Protocol):
    """Element-wise sum, min and max of a float vector across all workers, called in the same
    order on every worker; each receives the identical result. `bytes_reduced` counts the bytes
    this worker has contributed so far."""

    world_size: int
    bytes_reduced: int

    def allreduce(self, values: np.ndarray) -> np.ndarray: ...

    def allmin(self, values: np.ndarray) -> np.ndarray: ...

    def allmax(self, values: np.ndarray) -> np.ndarray: ...


class IdentityReducer:
    """A single worker: the local vector is already the global sum, min and max."""

    world_size = 1

    def __init__(self) -> None:
        self.bytes_reduced = 0

    def _local(self, values: np.ndarray) -> np.ndarray:
        out = np.array(values, dtype=np.float64, copy=True)
        self.bytes_reduced += out.nbytes
        return out

    def allreduce(self, values: np.ndarray) -> np.ndarray:
        return self._local(values)

    def allmin(self, values: np.ndarray) -> np.ndarray:
        return self._local(values)

    def allmax(self, values: np.ndarray) -> np.ndarray:
        return self._local(values)
