"""Issue 23 M3 against the real service (uvicorn, SQLite): a job's prune events are capped at its
schedule's count plus slack, each event's size is bounded, list pages carry counts instead of
event bodies, and /metrics works off the event loop."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
import yaml

from slimray.service.api.events import EVENT_SLACK
from slimray.service.api.schemas import MAX_EVENT_BYTES
from tests.service.live import live_service, settings_without_ray, submitted

TOKEN = "bounds-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SCHEDULED = 3  # examples/mnist.yaml: iterative, steps 45, 90, 135


@pytest.fixture
def live(tmp_path):
    with live_service(settings_without_ray(tmp_path, TOKEN)) as live:
        yield live


def _job(live) -> str:
    with open("examples/mnist.yaml") as f:
        spec = yaml.safe_load(f)
    response = httpx.post(f"{live.url}/v1/jobs", json=spec, headers=AUTH, timeout=30)
    assert response.status_code == 201, response.text
    submitted(live, response.json()["id"])
    return response.json()["id"]


def _report(live, job_id: str, step: int, pad: int) -> httpx.Response:
    event = {"step": step, "digest": "d", "padding": "x" * pad}  # an unknown field: kept, bounded
    body = {"kind": "report", "data": {"step": step, "event": event}}
    return httpx.post(f"{live.url}/v1/jobs/{job_id}/events", json=body, headers=AUTH, timeout=30)


def test_many_big_events_are_capped_and_list_pages_stay_small(live):
    """Regression: 250 events x 200 KB were all stored and every list page carried them (47.7 MB)."""
    job_id = _job(live)
    limit, pad = SCHEDULED + EVENT_SLACK, MAX_EVENT_BYTES - 1000
    for step in range(limit):
        assert _report(live, job_id, step, pad).status_code == 202
    refused = _report(live, job_id, limit, pad)
    assert refused.status_code == 422
    [error] = refused.json()["detail"]
    assert error["loc"] == ["body", "data", "event", "step"] and f"its {limit} prune events" in error["msg"]
    assert _report(live, job_id, 2, 10).status_code == 202  # a restarted group re-reports a step
    too_big = _report(live, job_id, 3, MAX_EVENT_BYTES)
    assert too_big.status_code == 422 and too_big.json()["detail"][0]["loc"][:4] == ["body", "data", "event"]
    assert str(MAX_EVENT_BYTES) in too_big.text
    listing = httpx.get(f"{live.url}/v1/jobs?limit=50", headers=AUTH, timeout=30)
    [summary] = listing.json()["jobs"]
    assert summary["prune_event_count"] == limit and "prune_events" not in summary
    assert len(listing.content) < 10_000
    job = httpx.get(f"{live.url}/v1/jobs/{job_id}", headers=AUTH, timeout=30).json()
    assert [e["step"] for e in job["prune_events"]] == list(range(limit))
    assert job["prune_events"][2]["padding"] == "x" * 10 and job["transitions"]


def test_metrics_are_built_off_the_event_loop(live):
    """Regression: /metrics parsed every stored event on the event loop: a slow scrape stalled
    every other request, the liveness probe included."""
    store = live.app.state.context.store
    recent = store.recent

    def slow_recent(limit):  # fault injection: a scrape that takes 2 s to read the store
        time.sleep(2.0)
        return recent(limit)

    store.recent = slow_recent
    scrape = threading.Thread(target=httpx.get, args=(f"{live.url}/metrics",),
                              kwargs={"headers": AUTH, "timeout": 30})  # fmt: skip
    scrape.start()
    time.sleep(0.3)
    start = time.perf_counter()
    assert httpx.get(f"{live.url}/healthz", timeout=10).status_code == 200
    assert time.perf_counter() - start < 1.0
    scrape.join()


def test_an_accuracy_budget_lets_each_scheduled_event_store_its_retries():
    from slimray.service.api.events import event_limit

    with open("examples/mnist.yaml") as f:
        spec = yaml.safe_load(f)
    assert event_limit(spec) == SCHEDULED + EVENT_SLACK
    budget = {**spec["prune"], "max_accuracy_drop": 0.01, "recovery_steps": 20, "max_retries": 2}
    assert event_limit({**spec, "prune": budget}) == SCHEDULED * 3 + EVENT_SLACK


def test_an_auto_schedule_stores_as_many_events_as_it_names():
    """Its steps are decided while training: its event count bounds what it may store."""
    from slimray.service.api.events import event_limit

    with open("examples/mnist.yaml") as f:
        spec = yaml.safe_load(f)
    auto = {**spec["prune"], "schedule": {"kind": "auto", "events": 4, "spacing": 10}}
    assert event_limit({**spec, "prune": auto}) == 4 + EVENT_SLACK
    budget = {**auto, "max_accuracy_drop": 0.01, "recovery_steps": 10, "max_retries": 1}
    assert event_limit({**spec, "prune": budget}) == 4 * 2 + EVENT_SLACK
