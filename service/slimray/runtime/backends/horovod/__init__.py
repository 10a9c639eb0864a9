"""The optional Horovod backend: its Ray Train set-up (`config`), `Reducer` (`reducer`), train
step and collectives (`step`) and the `WorkerBackend` tying them (`backend`)."""

from slimray.runtime.backends.horovod.backend import HOROVOD_VERSION, HorovodBackend
from slimray.runtime.backends.horovod.config import HorovodConfig

__all__ = ["HOROVOD_VERSION", "HorovodBackend", "HorovodConfig"]
