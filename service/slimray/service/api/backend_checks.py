"""Whether the Ray cluster can run a job's backend: asked by a probe job (a tiny Ray task on a
node) in a background thread, one at a time per backend, never in a request's thread.

An answer is cached for the service's life; a probe Ray could not answer is cached for
FAILURE_TTL_SECONDS, then asked again. A submission waits at most `wait_seconds` (the service's
`ray_timeout_seconds`) for a probe under way; if the answer is not there by then the job is
accepted and its driver checks the backend again on the cluster (issue 23 H1: probes ran in the
request thread under one global lock for up to 120 s, and a failed one was asked again by every
waiting request, one at a time, until every worker thread of the service waited on Ray)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from slimray.core.errors import BackendUnavailableError
from slimray.core.spec import BUILT_IN_BACKENDS, JobSpec
from slimray.service.executor import RayJobExecutor, RayUnavailable

log = logging.getLogger(__name__)

FAILURE_TTL_SECONDS = 30.0  # how long "Ray could not answer the probe" stands before asking again


@dataclass
class _Probe:
    """One probe of one backend: under way until `done` is set; then its answer or its error."""

    done: threading.Event = field(default_factory=threading.Event)
    answer: str | None = None  # what the cluster lacks (None: nothing)
    error: str | None = None  # why Ray could not answer
    finished_at: float = 0.0


class BackendChecks:
    """Cached answers of `RayJobExecutor.check_backend` (what is missing, or None)."""

    def __init__(self, executor: RayJobExecutor, wait_seconds: float,
                 failure_ttl: float = FAILURE_TTL_SECONDS,
                 clock: Callable[[], float] = time.monotonic):  # fmt: skip
        self.executor = executor
        self.wait_seconds, self.failure_ttl, self._clock = wait_seconds, failure_ttl, clock
        self._probes: dict[str, _Probe] = {}
        self._lock = threading.Lock()  # guards `_probes` only; never held while Ray is asked

    def _stale(self, probe: _Probe) -> bool:
        failed = probe.done.is_set() and probe.error is not None
        return failed and self._clock() - probe.finished_at >= self.failure_ttl

    def _probe(self, backend: str) -> _Probe:
        """The backend's probe: cached, under way, or started now in the background."""
        with self._lock:
            probe = self._probes.get(backend)
            if probe is None or self._stale(probe):
                probe = self._probes[backend] = _Probe()
                threading.Thread(target=self._run, args=(backend, probe), daemon=True,
                                 name=f"slimray-backend-check-{backend}").start()  # fmt: skip
            return probe

    def _run(self, backend: str, probe: _Probe) -> None:
        try:
            probe.answer = self.executor.check_backend(backend)
        except RayUnavailable as err:
            probe.error = str(err)
        except Exception as err:  # the probe must always finish, or every later check would wait on it
            log.exception("backend check of %r failed", backend)
            probe.error = f"backend check: {type(err).__name__}: {err}"
        probe.finished_at = self._clock()
        probe.done.set()

    def missing(self, backend: str) -> str | None:
        """What the cluster lacks for `backend` (None: nothing). RayUnavailable if Ray could not
        answer (within the failure TTL) or the probe did not finish within `wait_seconds`."""
        if backend in BUILT_IN_BACKENDS:
            return None
        probe = self._probe(backend)
        if not probe.done.wait(self.wait_seconds):
            raise RayUnavailable(f"the backend check of {backend!r} is still running after "
                                 f"{self.wait_seconds:g} s (it goes on in the background)")  # fmt: skip
        if probe.error is not None:
            raise RayUnavailable(probe.error)
        return probe.answer

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
