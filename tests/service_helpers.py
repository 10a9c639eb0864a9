"""Start the real service (uvicorn on 127.0.0.1) inside the test process, on a free port."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import httpx
import uvicorn

from slimray.service.api.main import create_app
from slimray.service.executor import RayJobExecutor
from slimray.service.ports import free_port
from slimray.service.server import uvicorn_config
from slimray.service.settings import Settings


def wait_for(predicate, timeout: float, what: str, interval: float = 1.0):
    """The predicate's first truthy value within `timeout` s, else AssertionError naming `what`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@contextlib.contextmanager
def running_service(settings: Settings, port: int | None = None,
                    executor: RayJobExecutor | None = None) -> Iterator[str]:  # fmt: skip
    """The service on `port` (a free one if None; give one when settings.service_url needs it);
    `executor` replaces the one the settings describe (e.g. a fake whose calls hang)."""
    port = port or free_port()
    app = create_app(settings, executor)
    server = uvicorn.Server(uvicorn_config(app, settings, "127.0.0.1", port, "error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    else:
        raise RuntimeError("service did not start")
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=15)
