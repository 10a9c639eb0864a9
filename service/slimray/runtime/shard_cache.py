"""Keep a worker's data shard in memory after the first epoch, when it fits.

Ray Data restarts its streaming split at every epoch; for shards that fit, later epochs are
reshuffled locally instead, so per-epoch start-up no longer costs the same for big and small models.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


class ShardCache:
    """Collects one full epoch of batches; then serves later epochs from memory."""

    def __init__(self, limit_bytes: int, batch_size: int, steps_per_epoch: int, seed: int):
        self.limit_bytes = limit_bytes
        self.batch_size = batch_size
        self.steps_per_epoch = steps_per_epoch
        self.seed = seed
        self._x: list[np.ndarray] = []
        self._y: list[np.ndarray] = []
        self._bytes = 0
        self.overflowed = limit_bytes <= 0
        self.x: np.ndarray | None = None
        self.y: np.ndarray | None = None

    @classmethod
    def from_arrays(
        cls, x: np.ndarray, y: np.ndarray, batch_size: int, steps_per_epoch: int, seed: int
    ) -> ShardCache:
        """A cache that is complete from the start: the worker's shard is already in memory."""
        cache = cls(x.nbytes + y.nbytes, batch_size, steps_per_epoch, seed)
        cache.x, cache.y = x, y
        return cache

    @property
    def complete(self) -> bool:
        return self.x is not None

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        """Record a streamed batch (call for every batch of the epoch, skipped ones too)."""
        if self.overflowed or self.complete:
            return
        self._bytes += x.nbytes + y.nbytes
        if self._bytes > self.limit_bytes:
            self.overflowed, self._x, self._y = True, [], []
            return
        self._x.append(x)
        self._y.append(y)

    def end_epoch(self) -> None:
        """Seal the cache if a whole epoch was recorded; otherwise start over next epoch."""
        if not self.overflowed and len(self._x) == self.steps_per_epoch:
            self.x, self.y = np.concatenate(self._x), np.concatenate(self._y)
        self._x, self._y, self._bytes = [], [], 0

    def batches(self, epoch: int) -> Iterator[dict[str, np.ndarray]]:
        """This epoch's batches: the cached rows in a fresh seeded order."""
        order = np.random.default_rng((self.seed, epoch)).permutation(len(self.x))
        for i in range(self.steps_per_epoch):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            yield {"x": self.x[idx], "y": self.y[idx]}
