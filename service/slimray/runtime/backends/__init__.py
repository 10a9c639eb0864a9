"""The registry of allreduce backends a job may choose (`JobSpec.backend`): one package each
(`tf_collective`, `horovod`), both implementing the ABCs of `base`."""

from __future__ import annotations

from slimray.core.errors import BackendUnavailableError
from slimray.runtime.backends.base import TrainStep, WorkerBackend
from slimray.runtime.backends.horovod import HorovodBackend
from slimray.runtime.backends.tf_collective import TFCollectiveBackend

# in `core.spec.BACKENDS` order (a test keeps the two in step)
BACKENDS: dict[str, type[WorkerBackend]] = {b.name: b for b in (TFCollectiveBackend, HorovodBackend)}


def get_backend(name: str) -> type[WorkerBackend]:
    """The backend class named `name`; BackendUnavailableError naming the known ones if none."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise BackendUnavailableError(name, f"unknown; one of {sorted(BACKENDS)}") from None


def backend_missing(name: str) -> str | None:
    """What this process lacks to run backend `name` (None: nothing). Runs as a tiny Ray task on
    the cluster: the driver and the service ask before a job starts."""
    return get_backend(name).missing()


__all__ = ["BACKENDS", "HorovodBackend", "TFCollectiveBackend", "TrainStep",
           "WorkerBackend", "backend_missing", "get_backend"]  # fmt: skip
