"""Issue 23 H1 (the rest): /healthz answers 503 while the worker pool that runs sync routes is
wedged, so the liveness probe restarts the pod, and 200 again once threads are free."""

from __future__ import annotations

import threading

import httpx
import pytest

from tests.service.live import live_service, settings_without_ray
from tests.service_helpers import wait_for

TOKEN = "pool-token"


@pytest.fixture
def live(tmp_path):
    with live_service(settings_without_ray(tmp_path, TOKEN)) as live:
        yield live


def test_healthz_fails_while_every_worker_thread_hangs(live):
    """Regression: 45 requests hung on Ray held every thread; GET /v1/jobs timed out for 100 s
    while /healthz answered 200, so the pod was never restarted."""
    pool = live.app.state.context.pool
    pool.bound = 1.0  # a short bound for the test (the default is a minute or more)
    store, release = live.app.state.context.store, threading.Event()
    listed = store.list

    def hung_list(*args):  # fault injection: the store call of GET /v1/jobs hangs until released
        release.wait(60)
        return listed(*args)

    store.list = hung_list
    auth = {"Authorization": f"Bearer {TOKEN}"}
    callers = [threading.Thread(target=httpx.get, args=(f"{live.url}/v1/jobs",),
                                kwargs={"headers": auth, "timeout": 90}) for _ in range(45)]  # fmt: skip
    for caller in callers:
        caller.start()
    try:
        wedged = wait_for(lambda: httpx.get(f"{live.url}/healthz", timeout=5).status_code == 503,
                          20, "/healthz to fail", interval=0.2)  # fmt: skip
        assert wedged
        assert "no worker thread free" in httpx.get(f"{live.url}/healthz", timeout=5).json()["detail"]
    finally:
        release.set()
    for caller in callers:
        caller.join(30)
    wait_for(lambda: httpx.get(f"{live.url}/healthz", timeout=5).status_code == 200, 20,
             "/healthz to recover", interval=0.2)  # fmt: skip


def test_healthz_is_ok_on_an_idle_service(live):
    response = httpx.get(f"{live.url}/healthz", timeout=5)
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
