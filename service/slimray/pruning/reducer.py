"""The reductions that make every worker score channels on the same numbers and prove it holds
the same mask: one `Reducer` base whose backends supply only the collective itself."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Literal

import numpy as np

ReduceOp = Literal["sum", "min", "max"]


class Reducer(ABC):
    """Element-wise sum, min and max of a float64 vector across the workers (same call order on
    every worker, identical results); a backend implements only `_collective`."""

    world_size: int  # workers taking part (a class or instance attribute of each subclass)
    bytes_reduced: int  # bytes this worker has contributed so far

    def __init__(self) -> None:
        self.bytes_reduced = 0

    def allreduce(self, values: np.ndarray) -> np.ndarray:
        return self._reduce(values, "sum")

    def allmin(self, values: np.ndarray) -> np.ndarray:
        return self._reduce(values, "min")

    def allmax(self, values: np.ndarray) -> np.ndarray:
        return self._reduce(values, "max")

    def _local(self, values: np.ndarray) -> np.ndarray:
        """This worker's contribution as contiguous float64, counted in `bytes_reduced`."""
        values = np.ascontiguousarray(values, dtype=np.float64)
        self.bytes_reduced += values.nbytes
        return values

    def _reduce(self, values: np.ndarray, op: ReduceOp) -> np.ndarray:
        local = self._local(values)
        if self.world_size == 1 or local.size == 0:
            return local.copy()  # never the caller's own array
        return self._collective(local, op)

    @abstractmethod
    def _collective(self, values: np.ndarray, op: ReduceOp) -> np.ndarray:
        """`op` of the workers' `values` (contiguous float64, non-empty, world_size > 1)."""


class IdentityReducer(Reducer):
    """A single worker: the local vector is already the global sum, min and max."""

    world_size = 1

    def _collective(self, values: np.ndarray, op: ReduceOp) -> np.ndarray:
        return values.copy()  # reached only by a subclass that claims more workers (tests do)
