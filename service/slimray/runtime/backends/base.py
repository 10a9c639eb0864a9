"""The two ABCs every backend package implements: `WorkerBackend` (Ray Train set-up, strategy,
train step, `Reducer`) and `TrainStep` (local gradients, then the backend's allreduce)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, ClassVar

from slimray.core.spec import BUILT_IN_BACKENDS, TrainSpec

if TYPE_CHECKING:  # slimray.pruning loads Keras (TensorFlow): the driver imports this module
    from slimray.pruning.reducer import Reducer


class TrainStep(ABC):
    """One training step: `local_gradients` (this worker's batch, compiled with XLA when asked),
    then `run` allreduces them the backend's way and applies them. Called as `step(x, y)`;
    returns this worker's share of the global mean loss and its count of correct predictions."""

    def __init__(self, model: Any, optimizer: Any, loss_batch: int, train: TrainSpec):
        # workers only: the registry loads this module in the driver, which must not load TensorFlow
        import keras
        import tensorflow as tf  # (the same reason)

        self.model, self.optimizer, self.loss_batch = model, optimizer, loss_batch
        self.loss_fn = keras.losses.SparseCategoricalCrossentropy(
            from_logits=train.from_logits, reduction=None
        )
        self.gradients = tf.function(self.local_gradients, jit_compile=train.jit_compile)
        self._step = tf.function(self.run)

    def local_gradients(self, x: Any, y: Any) -> tuple[Any, Any, list[Any]]:
        """Loss (mean over `loss_batch` samples), correct predictions and gradients, no collective."""
        import tensorflow as tf  # workers only, as in __init__

        with tf.GradientTape() as tape:
            out = self.model(x, training=True)
            loss = tf.nn.compute_average_loss(self.loss_fn(y, out), global_batch_size=self.loss_batch)
            if self.model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(self.model.losses))
        grads = tape.gradient(loss, self.model.trainable_variables)
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(out, -1, output_type=tf.int32), y), tf.float32))
        return loss, correct, grads

    @abstractmethod
    def run(self, x: Any, y: Any) -> tuple[Any, Any]:
        """Traced once per model: gradients, allreduce, update."""

    def __call__(self, x: Any, y: Any) -> tuple[Any, Any]:
        return self._step(x, y)


class WorkerBackend(ABC):
    """One backend as a worker sees it (built once per worker process); its classmethods run in
    the driver and the Train controller, which never import TensorFlow."""

    name: ClassVar[str]

    @classmethod
    @abstractmethod
    def ray_config(cls) -> Any:
        """The Ray Train `BackendConfig` that prepares the worker group before the loop runs."""

    @classmethod
    def missing(cls) -> str | None:
        """What this process lacks to run the backend, as a sentence (None: nothing). A built-in
        backend (`core.spec.BUILT_IN_BACKENDS`, the one list) lacks nothing; others override this."""
        if cls.name in BUILT_IN_BACKENDS:
            return None
        raise NotImplementedError(f"backend {cls.name!r} is not built in: it must say what it lacks")

    def __init__(self, rank: int, world: int, timeout_seconds: float | None = None):
        # how long one collective may wait for its peers before it fails (None: for ever)
        self.rank, self.world, self.timeout_seconds = rank, world, timeout_seconds

    @property
    @abstractmethod
    def strategy(self) -> Any:
        """The tf.distribute strategy whose scope models and optimizers are built in."""

    def building(self, what: str) -> AbstractContextManager[Any]:
        """The scope models and optimizers are built or rebuilt in (`what`: restore, a prune event's
        rebuild), where a backend whose variable creation is a collective bounds its wait."""
        return self.strategy.scope()

    @abstractmethod
    def reducer(self) -> Reducer:
        """The `Reducer` for channel scores and mask digests."""

    @abstractmethod
    def train_step(self, model: Any, optimizer: Any, batch_size: int, train: TrainSpec) -> TrainStep:
        """The step for this model (rebuilt after every prune event); `batch_size` per worker."""

    @abstractmethod
    def allreduce_gradients(self, grads: list[Any]) -> list[Any]:
        """Gradient-shaped tensors reduced across workers as the train step reduces them (sum
        for tf-collective, average for horovod), for benchmarks that time the allreduce alone."""

    def broadcast_weights(self, model: Any, optimizer: Any) -> None:  # noqa: B027 (optional)
        """Make every worker start from rank 0's weights and optimizer state (a no-op where the
        strategy already does it when variables are created)."""
