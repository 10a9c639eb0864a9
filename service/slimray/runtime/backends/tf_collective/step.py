"""The tf-collective train step: MultiWorkerMirroredStrategy's optimizer sums the workers'
gradients in its replica context. Loaded only in workers (it imports TensorFlow)."""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from slimray.core.spec import TrainSpec
from slimray.runtime.backends.base import TrainStep


class MirroredTrainStep(TrainStep):
    """Each worker's loss is its share of the global mean; the optimizer sums the shares'
    gradients across workers (MultiWorkerMirroredStrategy's cross-replica aggregation)."""

    def __init__(self, model: Any, optimizer: Any, loss_batch: int, train: TrainSpec, strategy: Any):
        super().__init__(model, optimizer, loss_batch, train)
        self.strategy = strategy

    def _replica_step(self, x: Any, y: Any) -> tuple[Any, Any]:
        loss, correct, grads = self.gradients(x, y)
        self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables, strict=True))
        return loss, correct

    def run(self, x: Any, y: Any) -> tuple[Any, Any]:
        loss, correct = self.strategy.run(self._replica_step, args=(x, y))
        local = self.strategy.experimental_local_results
        return tf.add_n(list(local(loss))), tf.add_n(list(local(correct)))


def sum_gradients(strategy: Any, grads: list[Any]) -> list[Any]:
    """The workers' gradients summed as the optimizer sums them (for benchmarks that time it)."""

    def replica(values):
        return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, values)

    reduced = strategy.run(replica, args=(list(grads),))
    return [strategy.experimental_local_results(g)[0] for g in reduced]
