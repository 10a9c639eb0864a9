"""The optional Horovod backend (0.28.1 over gloo, `make horovod`) as the worker loop sees it; its
own step, not `horovod.tensorflow.keras`, whose optimizer silently skips averaging under Keras 3."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slimray.core.errors import BackendUnavailableError
from slimray.core.spec import HOROVOD_BACKEND, TrainSpec
from slimray.runtime.backends.base import TrainStep, WorkerBackend
from slimray.runtime.backends.horovod.config import HorovodConfig

if TYPE_CHECKING:
    from slimray.runtime.backends.horovod.reducer import HorovodReducer

HOROVOD_VERSION = "0.28.1"

# The instance methods run in workers only; each imports TensorFlow and Horovod (or a module that
# does) where it needs them: the driver and the Train controller load this class for its
# classmethods, and Horovod is optional.


class HorovodBackend(WorkerBackend):
    """Horovod over gloo under the same Ray Train controller; TensorFlow runs undistributed in
    each worker (its default strategy), so nothing is reduced twice."""

    name = HOROVOD_BACKEND

    @classmethod
    def ray_config(cls) -> HorovodConfig:
        return HorovodConfig()

    @classmethod
    def missing(cls) -> str | None:
        try:
            import horovod  # optional: the question is whether it imports here
            import horovod.tensorflow  # (the same reason)
        except Exception as err:  # ImportError, or the op library failing to load
            return (f"horovod {HOROVOD_VERSION} with TensorFlow is not installed ({type(err).__name__}: "
                    f"{err}); build and install it with `make horovod`")  # fmt: skip
        if horovod.__version__ != HOROVOD_VERSION:
            return f"horovod {horovod.__version__} is installed; slimray supports {HOROVOD_VERSION}"
        return None

    def __init__(self, rank: int, world: int, timeout_seconds: float | None = None):
        super().__init__(rank, world, timeout_seconds)
        problem = self.missing()
        if problem:
            raise BackendUnavailableError(self.name, problem)
        import tensorflow as tf  # worker-only, and only once Horovod is known to load (see above)

        from slimray.runtime.backends.horovod.step import init_horovod  # (the same reason)

        init_horovod(rank, world, timeout_seconds)
        self._strategy = tf.distribute.get_strategy()

    @property
    def strategy(self) -> Any:
        return self._strategy

    def reducer(self) -> HorovodReducer:
        from slimray.runtime.backends.horovod.reducer import HorovodReducer  # worker-only

        return HorovodReducer(self.world)

    def train_step(self, model: Any, optimizer: Any, batch_size: int, train: TrainSpec) -> TrainStep:
        from slimray.runtime.backends.horovod.step import HorovodTrainStep  # worker-only

        return HorovodTrainStep(model, optimizer, batch_size, train, self.world)

    def allreduce_gradients(self, grads: list[Any]) -> list[Any]:
        from slimray.runtime.backends.horovod.step import average_gradients  # worker-only

        return average_gradients(grads)

    def broadcast_weights(self, model: Any, optimizer: Any) -> None:
        from slimray.runtime.backends.horovod.step import broadcast_variables  # worker-only

        broadcast_variables([*model.variables, *optimizer.variables])
