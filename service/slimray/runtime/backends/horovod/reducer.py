"""The Horovod `Reducer`: one `hvd.allreduce` per call, in call order. Loaded only in workers
(and tests): it imports TensorFlow."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from slimray.pruning.reducer import ReduceOp, Reducer


class HorovodReducer(Reducer):
    """Sums, mins and maxes over Horovod (gloo on CPU), after `hvd.init()` in the backend."""

    def __init__(self, world_size: int):
        super().__init__()
        self.world_size = world_size

    def _collective(self, values: np.ndarray, op: ReduceOp) -> np.ndarray:
        # Horovod is optional: a single worker (and the registry's tests) build this reducer without it
        import horovod.tensorflow as hvd

        hvd_op = {"sum": hvd.Sum, "min": hvd.Min, "max": hvd.Max}[op]
        return hvd.allreduce(tf.constant(values), op=hvd_op, name=f"slimray.reduce.{op}").numpy()
