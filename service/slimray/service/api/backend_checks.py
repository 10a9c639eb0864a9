"""Whether the Ray cluster can run a job's backend: asked once per backend by a probe job (a tiny
Ray task on a node), then cached for the service's life, so a submission is refused at once."""

from __future__ import annotations

import logging
import threading

from slimray.core.errors import BackendUnavailableError
from slimray.core.spec import BUILT_IN_BACKENDS, JobSpec
from slimray.service.executor import RayJobExecutor, RayUnavailable

log = logging.getLogger(__name__)


class BackendChecks:
    """Cached answers of `RayJobExecutor.check_backend` (what is missing, or None)."""

    def __init__(self, executor: RayJobExecutor):
        self.executor = executor
        self._answers: dict[str, str | None] = {}
        self._lock = threading.Lock()  # concurrent submissions wait for one probe

    def missing(self, backend: str) -> str | None:
        """RayUnavailable if Ray cannot answer now (nothing is cached then)."""
        if backend in BUILT_IN_BACKENDS:
            return None
        with self._lock:
            if backend not in self._answers:
                self._answers[backend] = self.executor.check_backend(backend)
            return self._answers[backend]

    def enforce(self, spec: JobSpec) -> None:
        """BackendUnavailableError (the field `backend`) if the cluster lacks it. With Ray unreachable
        the job is accepted: its driver checks again on the cluster and fails it with the same words."""
        try:
            problem = self.missing(spec.backend)
        except RayUnavailable as err:
            log.warning("backend %r not checked at submission (the driver checks it): %s", spec.backend, err)
            return
        if problem:
            raise BackendUnavailableError(spec.backend, problem)
