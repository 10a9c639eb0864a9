"""The service's parts, typed and built once per app: settings, store, executor, backend checks,
reconciler and metric registries. The lifespan opens one; routes get it through `api.deps`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import Histogram

from slimray.service.api.backend_checks import BackendChecks
from slimray.service.api.credentials import submission_claim
from slimray.service.api.pool import PoolWatch, wedged_bound
from slimray.service.api.reconcile import LaunchFor, Reconciler
from slimray.service.executor import DriverLaunch, RayJobExecutor, submission_id
from slimray.service.metrics import Registries, build_registries
from slimray.service.settings import Settings
from slimray.service.store import Job, Store


@dataclass(frozen=True)
class ServiceContext:
    """Everything a request may use; one per app, alive from start-up to shutdown."""

    settings: Settings
    store: Store
    executor: RayJobExecutor
    backend_checks: BackendChecks
    reconciler: Reconciler
    registries: Registries
    pool: PoolWatch  # whether sync routes' worker threads still make progress (/healthz)

    @property
    def requests(self) -> Histogram:
        """Request latency, by route template, method and status class (in both registries)."""
        return self.registries.requests


def executor_for(settings: Settings) -> RayJobExecutor:
    """The Ray job client the settings describe (its connection pool is closed with the app)."""
    return RayJobExecutor(settings.ray_address, settings.driver_python, settings.service_url,
                          settings.ray_auth_token, settings.ray_timeout_seconds)  # fmt: skip


def launcher(settings: Settings) -> LaunchFor:
    """How each job's driver is launched: its spec, its Ray submission id and the one-time claim
    of a credential for its own events only (issue 23 L5)."""
    secret = settings.api_token.get_secret_value() if settings.api_token else ""

    def launch_for(job: Job) -> DriverLaunch:
        ray_job_id = job.ray_job_id or submission_id(job.id)
        claim = submission_claim(secret, ray_job_id) if secret else ""
        return DriverLaunch(job.id, job.spec, claim, ray_job_id, resume=job.resubmits > 0)

    return launch_for


def build_context(settings: Settings, executor: RayJobExecutor) -> ServiceContext:
    """Open the store and build the rest around it; the reconciler is not started here."""
    store = Store(settings.db_path)
    reconciler = Reconciler(store, executor, launcher(settings), settings.reconcile_seconds,
                            settings.schedule_timeout_seconds, settings.keep_warm)  # fmt: skip
    registries = build_registries(store, settings.metrics_job_limit, lambda: reconciler.probe.reachable)
    checks = BackendChecks(executor, settings.ray_timeout_seconds)
    pool = PoolWatch(wedged_bound(settings.ray_timeout_seconds))
    return ServiceContext(settings, store, executor, checks, reconciler, registries, pool)


@contextlib.contextmanager
def serving(settings: Settings, executor: RayJobExecutor | None = None) -> Iterator[ServiceContext]:
    """A context with its reconciler running; on exit, stop it and close what was opened here
    (an executor passed in belongs to the caller)."""
    context = build_context(settings, executor or executor_for(settings))
    context.reconciler.start()
    try:
        yield context
    finally:
        context.reconciler.stop()
        if executor is None:
            context.executor.close()
        context.store.close()
