"""Liveness, readiness and Prometheus exposition, free of Ray calls (the reconciler probes Ray,
these read it). The probes are async: they answer while every worker thread waits on a hung Ray;
/metrics parses stored events, so it runs in a worker thread, off the event loop (issue 23 M3)."""

from __future__ import annotations

import shutil

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from slimray.service.api.context import ServiceContext
from slimray.service.api.deps import ContextDep, Credentials, is_admin, job_metrics_allowed

router = APIRouter(tags=["health"])


@router.get("/healthz", responses={503: {"description": "No worker thread was free for too long."}})
async def healthz(context: ContextDep) -> Response:
    """Alive unless the worker pool that runs sync routes is wedged (issue 23 H1): then 503, and
    the liveness probe restarts the pod."""
    pool = context.pool
    if pool.wedged():
        detail = f"no worker thread free for {pool.stalled_seconds():.0f} s (bound {pool.bound:.0f} s)"
        return JSONResponse({"status": "wedged", "detail": detail}, status_code=503)
    return JSONResponse({"status": "ok"})


@router.get("/readyz", responses={503: {"description": "The store is unavailable or its disk is full."}})
async def readyz(context: ContextDep, credentials: Credentials) -> Response:
    """Ready when the store answers and its disk has room. Anyone gets `{"status": ...}`; the admin
    token also gets the detail: free bytes, Ray's last probe (jobs wait for Ray while it is down, so
    that alone is not unready), node count and the store's error (issue 23 L6)."""
    body = _readiness(context)
    ready = body["store"] and body["disk"]
    body["status"] = "ready" if ready else "unready"
    if not is_admin(context.settings, credentials):
        body = {"status": body["status"]}
    return JSONResponse(body, status_code=200 if ready else 503)


def _readiness(context: ServiceContext) -> dict:
    """The store, its disk and Ray's last probe, in detail."""
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
    return body


@router.get("/metrics", response_class=PlainTextResponse,
            responses={200: {"description": "Prometheus text exposition format."}})  # fmt: skip
def metrics(context: ContextDep, credentials: Credentials) -> Response:
    """Service series for anyone; per-job series only to public reads or a valid token."""
    registries = context.registries
    registry = registries.full if job_metrics_allowed(context.settings, credentials) else registries.public
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
