"""Allreduce over TensorFlow's collective ops: the `Reducer` the worker loop hands to pruning,
plus min/max reductions for the mask agreement check."""

from __future__ import annotations

import numpy as np


class TFCollectiveReducer:
    """Sums (or mins/maxes) a float64 vector across the workers of a MultiWorkerMirroredStrategy.

    Uses `CollectiveReduceV2` pinned to this worker's CPU (~4 ms for 10k floats on 2 workers,
    against ~15 ms for `strategy.reduce`). Every worker must call it in the same order.
    """

    GROUP_KEY = 0x51AB  # distinct from the strategy's own collective groups
    FIRST_INSTANCE = 1 << 24

    def __init__(self, rank: int, world_size: int):
        self.rank = rank
        self.world_size = world_size
        self.device = f"/job:worker/replica:0/task:{rank}/device:CPU:0"
        self._instance = self.FIRST_INSTANCE
        self.bytes_reduced = 0

    def _reduce(self, values: np.ndarray, merge_op: str) -> np.ndarray:
        values = np.ascontiguousarray(values, dtype=np.float64)
        self.bytes_reduced += values.nbytes
        if self.world_size == 1 or values.size == 0:
            return values.copy()
        import tensorflow as tf

        self._instance += 1
        with tf.device(self.device):
            out = tf.raw_ops.CollectiveReduceV2(
                input=tf.constant(values),
                group_size=tf.constant(self.world_size),
                group_key=tf.constant(self.GROUP_KEY),
                instance_key=tf.constant(self._instance),
                ordering_token=[],
                merge_op=merge_op,
                final_op="Id",
            )
        return out.numpy()

    def allreduce(self, values: np.ndarray) -> np.ndarray:
        return self._reduce(values, "Add")

    def allmin(self, values: np.ndarray) -> np.ndarray:
        return self._reduce(values, "Min")

    def allmax(self, values: np.ndarray) -> np.ndarray:
        return self._reduce(values, "Max")
