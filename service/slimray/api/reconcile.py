"""Keeps the store in step with Ray: submits queued jobs, and moves jobs whose driver ended
(or vanished) to their final state. Runs at start-up and then periodically."""

from __future__ import annotations

import contextlib
import logging
import threading

from slimray.executor import RayJobExecutor, RayUnavailable
from slimray.jobstate import InvalidTransition, JobState
from slimray.store import Job, Store

log = logging.getLogger("slimray.reconcile")


def submit(store: Store, executor: RayJobExecutor, job: Job) -> None:
    """Hand a queued job to Ray; if Ray is unreachable it stays queued and is retried."""
    try:
        ray_job_id = executor.submit(job.id, job.spec)
    except RayUnavailable as err:
        store.set_error(job.id, f"waiting for Ray: {err}")
        return
    store.set_ray_job(job.id, ray_job_id)
    store.set_error(job.id, None)


def reconcile_job(store: Store, executor: RayJobExecutor, job: Job) -> None:
    if job.ray_job_id is None:
        if job.state == JobState.QUEUED:
            submit(store, executor, job)
        return
    try:
        status = executor.status(job.ray_job_id)
    except RayUnavailable as err:
        log.warning("cannot reconcile job %s: %s", job.id, err)
        return
    target = status.state
    if target is None:
        target = JobState.FAILED
        reason, error = "reconcile: lost", f"Ray has no record of job {job.ray_job_id}"
    else:
        reason, error = "reconcile", status.message if target == JobState.FAILED else None
    if target == job.state or (target == JobState.QUEUED):
        return
    with contextlib.suppress(InvalidTransition):  # a driver event got there first
        store.transition(job.id, target, reason=reason, error=error)


def reconcile_all(store: Store, executor: RayJobExecutor) -> None:
    for job in store.active():
        try:
            reconcile_job(store, executor, job)
        except Exception:  # one bad job must not stop the others
            log.exception("reconciling job %s failed", job.id)


class Reconciler:
    """Background thread calling `reconcile_all` every `interval` seconds until stopped."""

    def __init__(self, store: Store, executor: RayJobExecutor, interval: float):
        self.store, self.executor, self.interval = store, executor, interval
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slimray-reconcile", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def poke(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            reconcile_all(self.store, self.executor)
            self._wake.wait(self.interval)
            self._wake.clear()
