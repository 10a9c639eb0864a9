"""Assembles the FastAPI app: the lifespan opens the service context, then routers, the request
timer and the error table. Start-up never waits on Ray: the reconciler catches up once serving."""

from __future__ import annotations

import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request

from slimray import __version__
from slimray.service.api.body_limit import BodyLimit
from slimray.service.api.context import serving
from slimray.service.api.deps import context_of
from slimray.service.api.errors import install_error_handlers
from slimray.service.api.routes import health, jobs
from slimray.service.executor import RayJobExecutor
from slimray.service.metrics import method_label
from slimray.service.settings import Settings, get_settings


def _lifespan(settings: Settings, executor: RayJobExecutor | None):
    """The app's life: the context is opened (store, executor, metrics, reconciler running) and
    put on `app.state.context` once, the worker pool's heartbeat started; closed on shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        with serving(settings, executor) as context:
            app.state.context = context
            async with context.pool.running():
                yield

    return lifespan


async def _observe(request: Request, call_next):
    """Every request's latency, by route template (never the raw path), method and status class."""
    start = time.perf_counter()
    response = await call_next(request)
    route = request.scope.get("route")
    template = getattr(route, "path", "unmatched")
    context_of(request).requests.labels(
        template, method_label(request.method), f"{response.status_code // 100}xx"
    ).observe(time.perf_counter() - start)
    return response


def create_app(settings: Settings | None = None, executor: RayJobExecutor | None = None) -> FastAPI:
    """The service's app; `executor` replaces the one the settings describe (the caller closes it)."""
    settings = settings or get_settings()
    docs = settings.api_docs  # off by default: the API's map is not handed to anyone who asks
    app = FastAPI(title="slimray", version=__version__, lifespan=_lifespan(settings, executor),
                  openapi_url="/openapi.json" if docs else None,
                  docs_url="/docs" if docs else None, redoc_url="/redoc" if docs else None)  # fmt: skip
    app.include_router(jobs.router)
    app.include_router(health.router)
    # inside the timer: an exception from a receive the timer wraps would reach routes as a group
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.middleware("http")(_observe)
    install_error_handlers(app)
    return app
