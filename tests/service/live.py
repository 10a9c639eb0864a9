"""The real service under uvicorn in a thread, with its app at hand: tests that inject a fault
into a running service's parts (a slow store, a busy worker pool) reach them through `app`."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from slimray.service.api.main import create_app
from slimray.service.executor import submission_id
from slimray.service.server import uvicorn_config
from slimray.service.settings import Settings, get_settings
from tests.service_helpers import free_port


@dataclass
class Live:
    url: str
    app: FastAPI


def settings_without_ray(tmp_path, token: str) -> Settings:
    """Settings for a service whose Ray never answers (a free port) and whose reconciler sleeps."""
    return get_settings(api_token=token, db_path=tmp_path / "jobs.db", runs_root=tmp_path / "runs",
                        ray_address=f"http://127.0.0.1:{free_port()}", reconcile_seconds=60)  # fmt: skip


@contextlib.contextmanager
def live_service(settings: Settings, port: int | None = None) -> Iterator[Live]:
    """The service on `port` (a free one if None) until the block ends."""
    port = port or free_port()
    app = create_app(settings)
    server = uvicorn.Server(uvicorn_config(app, settings, "127.0.0.1", port, "error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while not server.started:
        if time.time() > deadline:
            raise RuntimeError("service did not start")
        time.sleep(0.05)
    try:
        yield Live(url, app)
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def submitted(live: Live, job_id: str) -> None:
    """Record what the reconciler records once Ray accepts the driver (Ray is down in these tests)."""
    store = live.app.state.context.store
    store.claim_submission(job_id, submission_id(job_id))
    store.mark_submitted(job_id)
