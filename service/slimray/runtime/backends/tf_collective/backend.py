"""The default backend as the worker loop sees it: MultiWorkerMirroredStrategy for gradients,
`CollectiveReduceV2` for scores and digests, TF_CONFIG set up by Ray Train."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from slimray.core.spec import DEFAULT_BACKEND, TrainSpec
from slimray.runtime.backends.base import TrainStep, WorkerBackend
from slimray.runtime.backends.tf_collective.config import TFCollectiveConfig

if TYPE_CHECKING:
    from slimray.runtime.backends.tf_collective.reducer import TFCollectiveReducer

# The methods below run in workers only; each imports TensorFlow (or a module that does) where it
# needs it, because the driver and the Train controller load this class for its classmethods.


class TFCollectiveBackend(WorkerBackend):
    """TensorFlow's own collectives (gRPC ring allreduce between the workers' TF servers)."""

    name = DEFAULT_BACKEND

    @classmethod
    def ray_config(cls) -> TFCollectiveConfig:
        return TFCollectiveConfig()

    def __init__(self, rank: int, world: int, timeout_seconds: float | None = None):
        import tensorflow as tf  # worker-only (see the module's note)

        super().__init__(rank, world, timeout_seconds)
        # the gradient allreduces fail with DeadlineExceeded past the timeout, not wait for ever
        options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout_seconds)
        self._strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)

    @property
    def strategy(self) -> Any:
        return self._strategy

    @contextlib.contextmanager
    def building(self, what: str) -> Iterator[None]:
        """The strategy's scope, with its variable-initializing broadcasts (no timeout of their
        own) aborted after `timeout_seconds`, like every other collective of the job."""
        from slimray.runtime.backends.tf_collective.abort import collectives_bounded  # worker-only

        bound = self.timeout_seconds if self.world > 1 else None
        with self._strategy.scope(), collectives_bounded(bound, what):
            yield

    def reducer(self) -> TFCollectiveReducer:
        from slimray.runtime.backends.tf_collective.reducer import TFCollectiveReducer  # worker-only

        return TFCollectiveReducer(self.rank, self.world, self.timeout_seconds)

    def train_step(self, model: Any, optimizer: Any, batch_size: int, train: TrainSpec) -> TrainStep:
        from slimray.runtime.backends.tf_collective.step import MirroredTrainStep  # worker-only

        return MirroredTrainStep(model, optimizer, batch_size * self.world, train, self._strategy)

    def allreduce_gradients(self, grads: list[Any]) -> list[Any]:
        from slimray.runtime.backends.tf_collective.step import sum_gradients  # worker-only

        return sum_gradients(self._strategy, grads)
