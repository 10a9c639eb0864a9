"""Assembles the FastAPI app: settings, store, executor, reconciler, routers, error mapping.
Start-up never waits on Ray: the reconciler thread catches up with it once serving."""

from __future__ import annotations

import sqlite3
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from slimray import __version__
from slimray.core.envvars import RAY_AUTH_TOKEN
from slimray.core.jobstate import InvalidTransition
from slimray.core.jsonsafe import finite
from slimray.service.api.backends import BackendChecks
from slimray.service.api.credentials import job_event_token
from slimray.service.api.events import EventRefused
from slimray.service.api.policy import PolicyError
from slimray.service.api.reconcile import Reconciler
from slimray.service.api.routes import health, jobs
from slimray.service.executor import DriverLaunch, RayJobExecutor
from slimray.service.metrics import build_registries, method_label
from slimray.service.settings import Settings, get_settings
from slimray.service.store import Job, Store, StoreUnavailable, UnknownJob


def _executor(settings: Settings) -> RayJobExecutor:
    import os

    token = settings.ray_token.get_secret_value() if settings.ray_token else os.environ.get(RAY_AUTH_TOKEN)
    return RayJobExecutor(settings.ray_address, settings.driver_python, settings.service_url,
                          token, settings.ray_timeout_seconds)  # fmt: skip


def _launcher(settings: Settings):
    """How each job's driver is launched: its spec and a credential for its own events only."""
    secret = settings.api_token.get_secret_value() if settings.api_token else ""

    def launch_for(job: Job) -> DriverLaunch:
        token = job_event_token(secret, job.id) if secret else ""
        return DriverLaunch(job.id, job.spec, token)

    return launch_for


def _json_error(code: int, detail) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=code)


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, err: RequestValidationError):
        # the default handler echoes the input, and a NaN there would break strict JSON
        return _json_error(status.HTTP_422_UNPROCESSABLE_CONTENT, finite(jsonable_encoder(err.errors())))

    @app.exception_handler(UnknownJob)
    async def unknown_job(request: Request, err: UnknownJob):
        return _json_error(status.HTTP_404_NOT_FOUND, f"no job {err.args[0]!r}")

    @app.exception_handler(InvalidTransition)
    async def invalid_transition(request: Request, err: InvalidTransition):
        return _json_error(status.HTTP_409_CONFLICT, str(err))

    @app.exception_handler(EventRefused)
    async def event_refused(request: Request, err: EventRefused):
        return _json_error(status.HTTP_409_CONFLICT, str(err))

    @app.exception_handler(PolicyError)
    async def policy(request: Request, err: PolicyError):
        detail = [{"loc": ["body", *loc], "msg": msg, "type": "policy_error"} for loc, msg in err.problems]
        return _json_error(status.HTTP_422_UNPROCESSABLE_CONTENT, detail)

    @app.exception_handler(StoreUnavailable)
    async def store_unavailable(request: Request, err: StoreUnavailable):
        return _json_error(status.HTTP_503_SERVICE_UNAVAILABLE, str(err))

    @app.exception_handler(sqlite3.Error)
    async def store_error(request: Request, err: sqlite3.Error):
        return _json_error(status.HTTP_503_SERVICE_UNAVAILABLE, f"the job store failed: {err}")


def _lifespan(settings: Settings, executor: RayJobExecutor | None):
    """The app's life: open the store, executor, metrics and reconciler; close what it opened."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        store = Store(settings.db_path)
        state = app.state
        state.settings, state.store = settings, store
        state.executor = executor or _executor(settings)
        state.backend_checks = BackendChecks(state.executor)
        registries = build_registries(
            store, settings.metrics_job_limit, lambda: state.reconciler.probe.reachable
        )
        state.registry, state.public_registry, state.requests = (
            registries.full, registries.public, registries.requests
        )  # fmt: skip
        state.reconciler = Reconciler(
            store, state.executor, _launcher(settings),
            settings.reconcile_seconds, settings.schedule_timeout_seconds,
        )  # fmt: skip
        state.reconciler.start()
        yield
        state.reconciler.stop()
        if executor is None:  # ours: close its connection pool
            state.executor.close()
        store.close()

    return lifespan


async def _observe(request: Request, call_next):
    """Every request's latency, by route template (never the raw path), method and status class."""
    start = time.perf_counter()
    response = await call_next(request)
    route = request.scope.get("route")
    template = getattr(route, "path", "unmatched")
    request.app.state.requests.labels(
        template, method_label(request.method), f"{response.status_code // 100}xx"
    ).observe(time.perf_counter() - start)
    return response


def create_app(settings: Settings | None = None, executor: RayJobExecutor | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(title="slimray", version=__version__, lifespan=_lifespan(settings, executor),
                  max_body_size=settings.max_body_bytes)  # fmt: skip
    app.include_router(jobs.router)
    app.include_router(health.router)
    app.middleware("http")(_observe)
    _error_handlers(app)
    return app
