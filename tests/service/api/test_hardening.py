"""The service under a hung Ray, hostile requests and a failing store (issue 8, items 2, 6-10):
real uvicorn where concurrency matters, TestClient elsewhere."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient

from slimray.service.api.credentials import job_event_token
from slimray.service.api.main import create_app
from slimray.service.executor import submission_id
from slimray.service.settings import get_settings
from slimray.service.store import Store
from tests.service_helpers import free_port, running_service

TOKEN = "hardening-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _spec(**overrides):
    with open("examples/mnist.yaml") as f:
        return {**yaml.safe_load(f), **overrides}


@contextlib.contextmanager
def hung_ray():
    """Fault: a "Ray job server" that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(512)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


def _settings(tmp_path, **overrides):
    base = dict(api_token=TOKEN, db_path=tmp_path / "jobs.db", runs_root=tmp_path / "runs",
                ray_address=f"http://127.0.0.1:{free_port()}", reconcile_seconds=0.2)  # fmt: skip
    return get_settings(**{**base, **overrides})


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def test_a_hung_ray_never_blocks_start_up_health_metrics_or_cancel(tmp_path):
    """Regression (item 7): Ray calls had no timeout and ran at start-up and in handlers."""
    with hung_ray() as address:
        settings = _settings(tmp_path, ray_address=address, ray_timeout_seconds=8)
        store = Store(settings.db_path)
        queued = store.create("waiting", _spec())
        store.close()
        started = time.perf_counter()
        with running_service(settings) as url, httpx.Client(base_url=url, timeout=30) as client:
            assert time.perf_counter() - started < 5, "start-up waited on Ray"
            with ThreadPoolExecutor(50) as pool:
                readies = list(pool.map(lambda _: client.get("/readyz"), range(50)))
            assert all(r.status_code == 200 for r in readies)
            for path in ("/healthz", "/metrics"):
                response, took = _timed(lambda p=path: client.get(p))
                assert response.status_code == 200 and took < 2, (path, took)
            response, took = _timed(lambda: client.delete(f"/v1/jobs/{queued.id}", headers=AUTH))
            assert response.status_code == 200 and took < 2, took
            assert response.json()["state"] == "cancelled"


def test_logs_from_a_hung_ray_time_out_as_503(tmp_path):
    with hung_ray() as address:
        settings = _settings(tmp_path, ray_address=address, ray_timeout_seconds=1)
        with TestClient(create_app(settings)) as client:
            job_id = client.post("/v1/jobs", json=_spec(), headers=AUTH).json()["id"]
            store = client.app.state.context.store
            store.claim_submission(job_id, submission_id(job_id))
            store.mark_submitted(job_id)
            response, took = _timed(lambda: client.get(f"/v1/jobs/{job_id}/logs", headers=AUTH))
            assert response.status_code == 503 and took < 5, (response.text, took)


def test_readyz_reports_ray_gone_once_it_is(tmp_path):
    """Regression (item 10): /readyz said Ray was reachable after Ray was gone."""
    import uvicorn
    from fastapi import FastAPI

    ray = FastAPI()
    ray.get("/api/version")(lambda: {"version": "fake"})
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(ray, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    with TestClient(create_app(_settings(tmp_path, ray_address=f"http://127.0.0.1:{port}"))) as client:
        deadline = time.time() + 10
        while client.get("/readyz", headers=AUTH).json()["ray"] is not True and time.time() < deadline:
            time.sleep(0.1)
        assert client.get("/readyz", headers=AUTH).json()["ray"] is True
        server.should_exit = True
        thread.join(10)
        deadline = time.time() + 10
        while client.get("/readyz", headers=AUTH).json()["ray"] is not False and time.time() < deadline:
            time.sleep(0.1)
        assert client.get("/readyz", headers=AUTH).json()["ray"] is False


@pytest.fixture
def api(tmp_path):
    with TestClient(create_app(_settings(tmp_path, metrics_token="scrape-token"))) as client:
        yield client


def test_the_method_label_is_bounded(api):
    """Regression (item 8): any method name became a label value (17 MB per scrape)."""
    for i in range(40):
        api.request(f"X{i}", "/healthz")
    text = api.get("/metrics").text
    assert 'method="other"' in text and "X17" not in text
    methods = {line.split('method="')[1].split('"')[0] for line in text.splitlines() if 'method="' in line}
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}


def test_job_series_need_a_token_unless_reads_are_public(api):
    job_id = api.post("/v1/jobs", json=_spec(), headers=AUTH).json()["id"]
    anonymous = api.get("/metrics").text
    assert "slimray_jobs{" in anonymous and job_id not in anonymous
    for token in (TOKEN, "scrape-token"):
        text = api.get("/metrics", headers={"Authorization": f"Bearer {token}"}).text
        assert f'job="{job_id}"' in text
    assert job_id not in api.get("/metrics", headers={"Authorization": "Bearer wrong"}).text


def test_a_job_token_posts_only_its_own_jobs_events(api):
    """Regression (item 2): drivers held the admin token and could post for any job."""
    store = api.app.state.context.store
    ids = [api.post("/v1/jobs", json=_spec(), headers=AUTH).json()["id"] for _ in range(2)]
    for job_id in ids:
        store.claim_submission(job_id, submission_id(job_id))
        store.mark_submitted(job_id)
    own = {"Authorization": f"Bearer {job_event_token(TOKEN, ids[0])}"}
    start = {"kind": "start", "data": {"total_steps": 5}}
    assert api.post(f"/v1/jobs/{ids[0]}/events", json=start, headers=own).status_code == 202
    assert api.post(f"/v1/jobs/{ids[1]}/events", json=start, headers=own).status_code == 401
    for path in ("/v1/jobs", f"/v1/jobs/{ids[1]}"):
        assert api.get(path, headers=own).status_code == 401
    assert api.delete(f"/v1/jobs/{ids[1]}", headers=own).status_code == 401
    launch = api.app.state.context.reconciler.launch_for(store.get(ids[1]))
    token = job_event_token(TOKEN, ids[1])
    assert token not in repr(launch) and TOKEN not in repr(launch)  # only its claim (issue 23 L5)
    claim = {"Authorization": f"Bearer {launch.event_claim}"}
    assert api.post(f"/v1/jobs/{ids[0]}/claim", headers=claim).status_code == 401  # another job's
    assert api.post(f"/v1/jobs/{ids[1]}/claim", headers=claim).json() == {"event_token": token}
    assert api.post(f"/v1/jobs/{ids[1]}/claim", headers=claim).status_code == 409  # spent
    assert api.post("/v1/jobs/nope/claim", headers=AUTH).status_code == 401  # 401 before 404


def test_bodies_beyond_the_limit_are_refused_and_not_stored(tmp_path):
    """Regression (item 9): a 5 MB event was stored and returned on every GET."""
    with TestClient(create_app(_settings(tmp_path, max_body_bytes=100_000))) as client:
        job_id = client.post("/v1/jobs", json=_spec(), headers=AUTH).json()["id"]
        big = {"kind": "worker_error", "data": {"0": "x" * 200_000}}
        assert client.post(f"/v1/jobs/{job_id}/events", json=big, headers=AUTH).status_code == 413
        assert client.post("/v1/jobs", json={**_spec(), "pad": "x" * 200_000},
                           headers=AUTH).status_code == 413  # fmt: skip
        assert client.get("/v1/jobs", headers=AUTH).json()["total"] == 1


def _nested(depth):
    value: dict = {}
    for _ in range(depth):
        value = {"a": value}
    return value


FORMERLY_500 = [
    ("GET", "/v1/jobs", {"params": {"offset": 9223372036854775808}}),
    ("GET", "/v1/jobs", {"params": {"offset": 2**63 - 1}}),
    ("GET", "/v1/jobs/a%00b", {}),
    ("DELETE", "/v1/jobs/a%00b", {}),
    ("POST", "/v1/jobs", {"json": _spec(data={"source": "a\x00b.npz"})}),
    ("POST", "/v1/jobs", {"json": _spec(data={"source": "s3://[bad/x.npz"})}),
    ("POST", "/v1/jobs", {"json": _spec(model={"source": "seed_cnn", "kwargs": _nested(400)})}),
    ("POST", "/v1/jobs/abc/events", {"json": {"kind": "report", "data": {"step": 2**63}}}),
]


@pytest.mark.parametrize(("method", "path", "kwargs"), FORMERLY_500)
def test_inputs_that_gave_500_get_4xx(api, method, path, kwargs):
    response = api.request(method, path, headers=AUTH, **kwargs)
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])


@pytest.mark.parametrize("kind", ["report", "worker_error", "end"])
def test_a_driver_event_nested_500_deep_is_refused_and_the_job_stays_readable(api, kind):
    """Regression (issue 23 L2): a prune event nested 500 deep gave a 500 (RecursionError in
    `finite`); one that got stored made every GET of its job answer 500."""
    store = api.app.state.context.store
    job_id = api.post("/v1/jobs", json=_spec(), headers=AUTH).json()["id"]
    store.claim_submission(job_id, submission_id(job_id))
    store.mark_submitted(job_id)
    deep = _nested(500)
    data = {"report": {"step": 3, "event": {"step": 3, "extra": deep}},
            "worker_error": {"0": deep}, "end": {"state": "succeeded", "x": deep}}[kind]  # fmt: skip
    response = api.post(f"/v1/jobs/{job_id}/events", json={"kind": kind, "data": data}, headers=AUTH)
    assert response.status_code == 422, (response.status_code, response.text[:300])
    assert response.json()["detail"][0]["loc"] == ["body", "data"]
    assert "nested more than" in response.json()["detail"][0]["msg"]
    assert api.get(f"/v1/jobs/{job_id}", headers=AUTH).status_code == 200
    assert api.get("/v1/jobs", headers=AUTH).status_code == 200


def test_a_deleted_store_makes_writes_and_readiness_fail_loudly(api, tmp_path):
    """Regression (item 10): deleting the store lost jobs silently while /readyz said ready."""
    (tmp_path / "jobs.db").unlink()
    response = api.post("/v1/jobs", json=_spec(), headers=AUTH)
    assert response.status_code == 503 and "gone" in response.json()["detail"]
    ready = api.get("/readyz", headers=AUTH)
    assert ready.status_code == 503 and ready.json()["store"] is False


def test_a_full_disk_gives_503_with_the_reason_and_unready(tmp_path):
    with TestClient(create_app(_settings(tmp_path, min_free_bytes=2**62))) as client:
        ready = client.get("/readyz", headers=AUTH)
        assert ready.status_code == 503 and ready.json()["disk"] is False
        store = client.app.state.context.store
        pages = store._db.execute("PRAGMA page_count").fetchone()[0]
        store._db.execute(f"PRAGMA max_page_count={pages}")  # fault: no room left
        codes = {client.post("/v1/jobs", json={**_spec(), "name": f"j{i}"}, headers=AUTH).status_code
                 for i in range(60)}  # fmt: skip
        assert 503 in codes and not any(c >= 500 and c != 503 for c in codes), codes


def test_readyz_detail_needs_the_admin_token_and_the_status_code_does_not(tmp_path):
    """Regression (issue 23 L6): /readyz showed free bytes, node count and store errors to anyone."""
    with TestClient(create_app(_settings(tmp_path))) as client:
        anonymous, admin = client.get("/readyz"), client.get("/readyz", headers=AUTH)
        wrong = client.get("/readyz", headers={"Authorization": "Bearer nope"})
        assert anonymous.status_code == admin.status_code == wrong.status_code == 200
        assert anonymous.json() == wrong.json() == {"status": "ready"}
        assert admin.json()["status"] == "ready" and "disk_free_bytes" in admin.json()
    with TestClient(create_app(_settings(tmp_path, min_free_bytes=2**62))) as client:
        assert client.get("/readyz").status_code == 503
        assert client.get("/readyz").json() == {"status": "unready"}


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json"])
def test_api_docs_are_served_only_when_the_setting_says_so(tmp_path, path):
    """Regression (issue 23 L6): the docs and the OpenAPI were open to anyone, always."""
    with TestClient(create_app(_settings(tmp_path))) as client:
        assert client.get(path).status_code == 404
        assert client.get(path, headers=AUTH).status_code == 404
    with TestClient(create_app(_settings(tmp_path, api_docs=True))) as client:
        assert client.get(path).status_code == 200
