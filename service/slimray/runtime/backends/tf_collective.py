"""The default backend: MultiWorkerMirroredStrategy for gradients (the optimizer allreduces in
the strategy's replica context) and `CollectiveReduceV2` for scores and digests."""

from __future__ import annotations

from typing import Any

from slimray.core.spec import DEFAULT_BACKEND, TrainSpec
from slimray.runtime.backends.base import TrainStep, WorkerBackend


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
        import tensorflow as tf

        loss, correct = self.strategy.run(self._replica_step, args=(x, y))
        local = self.strategy.experimental_local_results
        return tf.add_n(list(local(loss))), tf.add_n(list(local(correct)))


class TFCollectiveBackend(WorkerBackend):
    """TensorFlow's own collectives (gRPC ring allreduce between the workers' TF servers)."""

    name = DEFAULT_BACKEND

    @classmethod
    def ray_config(cls) -> Any:
        from slimray.runtime.tf_backend import TFCollectiveConfig

        return TFCollectiveConfig()

    def __init__(self, rank: int, world: int):
        import tensorflow as tf

        super().__init__(rank, world)
        self._strategy = tf.distribute.MultiWorkerMirroredStrategy()

    @property
    def strategy(self) -> Any:
        return self._strategy

    def reducer(self) -> Any:
        from slimray.runtime.collectives import TFCollectiveReducer

        return TFCollectiveReducer(self.rank, self.world)

    def train_step(self, model: Any, optimizer: Any, batch_size: int, train: TrainSpec) -> TrainStep:
        return MirroredTrainStep(model, optimizer, batch_size * self.world, train, self._strategy)

    def allreduce_gradients(self, grads: list[Any]) -> list[Any]:
        import tensorflow as tf

        def replica(values):
            return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, values)

        reduced = self._strategy.run(replica, args=(list(grads),))
        return [self._strategy.experimental_local_results(g)[0] for g in reduced]
