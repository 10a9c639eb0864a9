"""Liveness, readiness and Prometheus exposition."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from slimray.api.deps import ExecutorDep, StoreDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(store: StoreDep, executor: ExecutorDep) -> Response:
    """Ready when the store answers; Ray's reachability is reported, jobs wait for it if down."""
    try:
        store_ok = store.ping()
    except Exception:
        store_ok = False
    body = {"store": store_ok, "ray": executor.reachable()}
    return JSONResponse(body, status_code=200 if store_ok else 503)


@router.get("/metrics")
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.registry), media_type=CONTENT_TYPE_LATEST)
