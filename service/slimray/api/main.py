"""Assembles the FastAPI app: settings, store, executor, reconciler, routers, error mapping."""

from __future__ import annotations

import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from slimray import __version__
from slimray.api.policy import PolicyError
from slimray.api.reconcile import Reconciler, reconcile_all
from slimray.api.routes import health, jobs
from slimray.executor import RayJobExecutor
from slimray.jobstate import InvalidTransition
from slimray.jsonsafe import finite
from slimray.metrics import build_registry
from slimray.settings import Settings, get_settings
from slimray.store import Store, UnknownJob


def create_app(settings: Settings | None = None, executor: RayJobExecutor | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        store = Store(settings.db_path)
        token = settings.api_token.get_secret_value() if settings.api_token else None
        app.state.settings = settings
        app.state.store = store
        app.state.executor = executor or RayJobExecutor(
            settings.ray_address, settings.driver_python, settings.service_url, token
        )
        app.state.registry, app.state.requests = build_registry(store, settings.metrics_job_limit)
        reconcile_all(store, app.state.executor)  # catch up with Ray before serving
        app.state.reconciler = Reconciler(store, app.state.executor, settings.reconcile_seconds)
        app.state.reconciler.start()
        yield
        app.state.reconciler.stop()
        store.close()

    app = FastAPI(title="slimray", version=__version__, lifespan=lifespan)
    app.include_router(jobs.router)
    app.include_router(health.router)

    @app.middleware("http")
    async def observe(request: Request, call_next):
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        template = getattr(route, "path", "unmatched")
        request.app.state.requests.labels(
            template, request.method, f"{response.status_code // 100}xx"
        ).observe(time.perf_counter() - start)
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, err: RequestValidationError):
        # the default handler echoes the input, and a NaN there would break strict JSON
        detail = finite(jsonable_encoder(err.errors()))
        return JSONResponse({"detail": detail}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)

    @app.exception_handler(UnknownJob)
    async def unknown_job(request: Request, err: UnknownJob):
        return JSONResponse({"detail": f"no job {err.args[0]!r}"}, status_code=status.HTTP_404_NOT_FOUND)

    @app.exception_handler(InvalidTransition)
    async def invalid_transition(request: Request, err: InvalidTransition):
        return JSONResponse({"detail": str(err)}, status_code=status.HTTP_409_CONFLICT)

    @app.exception_handler(PolicyError)
    async def policy(request: Request, err: PolicyError):
        detail = [{"loc": ["body", *loc], "msg": msg, "type": "policy_error"} for loc, msg in err.problems]
        return JSONResponse({"detail": detail}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)

    return app
