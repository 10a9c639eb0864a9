"""Liveness, readiness and Prometheus exposition. All async and free of Ray calls: they answer
even when every worker thread waits on a hung Ray (the reconciler probes Ray, these read it)."""

from __future__ import annotations

import shutil

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from slimray.service.api.deps import ContextDep, Credentials, job_metrics_allowed

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "The store is unavailable or its disk is full."}})
async def readyz(context: ContextDep) -> Response:
    """Ready when the store answers and its disk has room; Ray's last probe is reported (jobs
    wait for Ray while it is down, so that alone is not unready)."""
    try:
        store_ok, store_error = context.store.ping(), None
    except Exception as err:  # StoreUnavailable, or anything SQLite raises
        store_ok, store_error = False, str(err)
    free = shutil.disk_usage(context.store.path.parent).free
    disk_ok = free >= context.settings.min_free_bytes
    probe = context.reconciler.probe
    body = {"store": store_ok, "disk_free_bytes": free, "disk": disk_ok, "ray": probe.reachable,
            "ray_checked_at": probe.checked_at, "ray_nodes": probe.nodes}  # fmt: skip
    if store_error:
        body["store_error"] = store_error
    return JSONResponse(body, status_code=200 if store_ok and disk_ok else 503)


@router.get("/metrics", response_class=PlainTextResponse,
            responses={200: {"description": "Prometheus text exposition format."}})  # fmt: skip
async def metrics(context: ContextDep, credentials: Credentials) -> Response:
    """Service series for anyone; per-job series only to public reads or a valid token."""
    registries = context.registries
    registry = registries.full if job_metrics_allowed(context.settings, credentials) else registries.public
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
