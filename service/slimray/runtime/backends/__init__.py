"""The allreduce backends a job may choose (`JobSpec.backend`): each gives Ray Train its worker
set-up and the worker loop its strategy, train step and `Reducer`. Registered by name."""

from __future__ import annotations

from slimray.runtime.backends.base import TrainStep, WorkerBackend
from slimray.runtime.backends.horovod import HorovodBackend
from slimray.runtime.backends.tf_collective import TFCollectiveBackend

BACKENDS: dict[str, type[WorkerBackend]] = {b.name: b for b in (TFCollectiveBackend, HorovodBackend)}


class BackendUnavailableError(ValueError):
    """The job asks for a backend this cluster cannot run (e.g. Horovod is not installed)."""


def get_backend(name: str) -> type[WorkerBackend]:
    try:
        return BACKENDS[name]
    except KeyError:
        raise ValueError(f"backend: unknown {name!r}; one of {sorted(BACKENDS)}") from None


def backend_missing(name: str) -> str | None:
    """What this process lacks to run backend `name` (None: nothing). Runs as a tiny Ray task on
    the cluster: the driver and the service ask before a job starts."""
    return get_backend(name).missing()


__all__ = ["BACKENDS", "BackendUnavailableError", "TrainStep", "WorkerBackend", "backend_missing",
           "get_backend"]  # fmt: skip
