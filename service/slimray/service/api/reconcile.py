"""Keeps the store in step with Ray: hands queued jobs to Ray (claiming each first, so a cancel
wins), stops cancelled ones until Ray confirms, fails jobs Ray never starts or has forgotten,
and follows drivers to their end, taking the report from the run directory if the driver's
last event never came. Runs in its own thread; never in a request or at start-up."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import ValidationError

from slimray.core.jobstate import InvalidTransition, JobState
from slimray.core.spec import JobSpec
from slimray.core.storage import REPORT_FILE, RunStore, StorageError
from slimray.service.api.events import stored_report
from slimray.service.executor import DriverLaunch, RayJobExecutor, RayUnavailable, submission_id
from slimray.service.store import Job, Store

log = logging.getLogger("slimray.reconcile")
LaunchFor = Callable[[Job], DriverLaunch]


@dataclass
class RayProbe:
    """What the last cycle learned about Ray (read by /readyz)."""

    reachable: bool | None = None  # None: not checked yet
    checked_at: float | None = None
    nodes: int | None = None  # alive Ray nodes (a local runs_root needs one, or a shared mount)


def submit(store: Store, executor: RayJobExecutor, job: Job, launch_for: LaunchFor) -> None:
    """Hand a queued job to Ray; if Ray is unreachable it stays queued and is retried."""
    ray_job_id = job.ray_job_id or submission_id(job.id)
    if job.ray_job_id is None and not store.claim_submission(job.id, ray_job_id):
        return  # cancelled (or claimed) since it was read
    launch(store, executor, job, launch_for)


def launch(store: Store, executor: RayJobExecutor, job: Job, launch_for: LaunchFor) -> None:
    """Submit the job's current Ray submission; if Ray is unreachable, retried next cycle."""
    try:
        executor.submit(launch_for(store.get(job.id)))  # with its submission id, as claimed
    except RayUnavailable as err:
        store.set_error(job.id, f"waiting for Ray: {err}")
        return
    store.mark_submitted(job.id)


def resubmissions_allowed(job: Job) -> int | None:
    """How many lost drivers the job's spec allows resubmitting (`failure.max_failures`; None:
    unlimited, for -1)."""
    try:
        allowed = JobSpec.model_validate(job.spec).failure.max_failures
    except ValidationError:
        return 0
    return None if allowed == -1 else allowed


def resubmit(store: Store, executor: RayJobExecutor, job: Job, launch_for: LaunchFor, cause: str) -> bool:
    """Submit a job whose driver was lost again, as `<submission>-r<n>` resuming from its last
    checkpoint, if its spec allows one more (the cause and the new id in its history)."""
    allowed = resubmissions_allowed(job)
    if allowed is not None and job.resubmits >= allowed:
        return False
    new = submission_id(job.id, job.resubmits + 1)
    of = "unlimited" if allowed is None else allowed
    reason = f"driver lost: {cause}; resubmitted as {new} (resubmission {job.resubmits + 1} of {of})"
    if store.resubmit(job.id, job.ray_job_id, new, reason):
        launch(store, executor, job, launch_for)
    return True


def stop(store: Store, executor: RayJobExecutor, job: Job) -> None:
    """Stop a cancelled job's driver; the mark stays until Ray has stopped it or forgotten it."""
    try:
        executor.stop(job.ray_job_id)
    except RayUnavailable as err:
        log.warning("cannot stop job %s yet: %s", job.id, err)
        return
    status = executor.status(job.ray_job_id)
    if status.state is None or status.state.is_terminal:
        store.stop_confirmed(job.id)


def _fail(store: Store, job: Job, reason: str, error: str) -> None:
    with contextlib.suppress(InvalidTransition):  # a driver event got there first
        store.finish(job.id, JobState.FAILED, None, reason=reason, error=error)


def follow(store: Store, executor: RayJobExecutor, job: Job, launch_for: LaunchFor,
           schedule_timeout: float) -> None:  # fmt: skip
    """Move a submitted job to the state Ray reports; resubmit it if its driver was lost outside
    its code; fail it if Ray lost it or never starts it."""
    status = executor.status(job.ray_job_id)
    if status.state is None:
        _fail(store, job, "reconcile: lost", f"Ray has no record of job {job.ray_job_id}")
        return
    if status.lost and resubmit(store, executor, job, launch_for, status.lost):
        return
    waited = time.time() - (job.submitted_at or time.time())
    if status.pending and waited > schedule_timeout:
        with contextlib.suppress(RayUnavailable):
            executor.stop(job.ray_job_id)
        _fail(store, job, "reconcile: not scheduled",
              f"Ray did not start the job within {schedule_timeout:.0f} s: {status.message}")  # fmt: skip
        return
    if status.state in (job.state, JobState.QUEUED):
        return
    error = status.message if status.state == JobState.FAILED else None
    with contextlib.suppress(InvalidTransition):
        if status.state.is_terminal:
            report = published_report(job)  # the driver's `end` event may never have arrived
            if report is not None and status.state == JobState.FAILED:
                error = report.get("error") or error
            store.finish(job.id, status.state, report, reason="reconcile", error=error)
        else:
            store.transition(job.id, status.state, reason="reconcile")


def published_report(job: Job) -> dict | None:
    """The report the driver published in the job's run directory (local or on a store), if any."""
    location = (job.spec.get("output") or {}).get("dir")
    if not location or job.report is not None:
        return None
    try:
        report = json.loads(RunStore.of(location).read_bytes(REPORT_FILE))
    except (StorageError, ValueError) as err:
        log.info("job %s: no published report at %s (%s)", job.id, location, err)
        return None
    return stored_report(report) if isinstance(report, dict) else None


def reconcile_job(store: Store, executor: RayJobExecutor, job: Job, launch_for: LaunchFor,
                  schedule_timeout: float = float("inf")) -> None:  # fmt: skip
    if job.submitted_at is None and job.state == JobState.QUEUED:
        submit(store, executor, job, launch_for)
        return
    if job.ray_job_id is None:
        return
    if job.submitted_at is None:  # a resubmission Ray did not take yet
        launch(store, executor, job, launch_for)
        return
    try:
        follow(store, executor, job, launch_for, schedule_timeout)
    except RayUnavailable as err:
        log.warning("cannot reconcile job %s: %s", job.id, err)


def reconcile_all(store: Store, executor: RayJobExecutor, launch_for: LaunchFor,
                  schedule_timeout: float = float("inf")) -> None:  # fmt: skip
    for job in store.pending_stops():
        try:
            stop(store, executor, job)
        except Exception:  # one bad job must not stop the others
            log.exception("stopping job %s failed", job.id)
    for job in store.active():
        try:
            reconcile_job(store, executor, job, launch_for, schedule_timeout)
        except Exception:
            log.exception("reconciling job %s failed", job.id)


@dataclass(frozen=True)
class WarmedFor:
    """The Ray session and alive nodes a warm job was submitted for."""

    session: str
    nodes: int

    def needs_warming_after(self, last: WarmedFor | None) -> bool:
        """A new session, or more nodes than the last warm job saw."""
        return last is None or self.session != last.session or self.nodes > last.nodes


class Reconciler:
    """Background thread: probe Ray, then `reconcile_all`, every `interval` s (or when poked)."""

    def __init__(self, store: Store, executor: RayJobExecutor, launch_for: LaunchFor,
                 interval: float, schedule_timeout: float, keep_warm: bool = False):  # fmt: skip
        self.store, self.executor, self.launch_for = store, executor, launch_for
        self.interval, self.schedule_timeout = interval, schedule_timeout
        self.keep_warm = keep_warm
        self.warmed: WarmedFor | None = None  # what the last warm job was submitted for
        self.probe = RayProbe()
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
        self._thread.join(timeout=30)

    def run_once(self) -> None:
        session = self.executor.session_name()  # one call: the probe and the session
        reachable = session is not None
        nodes = None
        if reachable:
            with contextlib.suppress(RayUnavailable):
                nodes = self.executor.alive_nodes()
        self.probe = RayProbe(reachable, time.time(), nodes)
        reconcile_all(self.store, self.executor, self.launch_for, self.schedule_timeout)
        if self.keep_warm and session is not None:
            self._warm(WarmedFor(session, nodes or 0))

    def _warm(self, now: WarmedFor) -> None:
        """Submit the warm job for a Ray session not warmed yet (a new cluster has no keeper), or
        once it has more nodes (an autoscaled node comes up cold). A refusal is tried next cycle;
        a repeat is harmless (each node's keeper fills an env up to its cap only)."""
        if not now.needs_warming_after(self.warmed):
            return
        try:
            log.info("keeping Ray's workers warm (%s): job %s", now, self.executor.keep_warm())
            self.warmed = now
        except RayUnavailable as err:
            log.warning("could not submit the warm job: %s", err)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # the store may be unavailable for a while; keep the thread alive
                log.exception("reconcile cycle failed")
            self._wake.wait(self.interval)
            self._wake.clear()
