"""Issue 23 L3: the app enforces `max_body_bytes` itself, with or without a Content-Length, so
the 413 holds on FastAPI releases whose constructor ignores `max_body_size`."""

from __future__ import annotations

import fastapi._body_limit
import httpx
import pytest

from slimray.service.settings import get_settings
from tests.service.live import live_service
from tests.service_helpers import free_port

TOKEN = "limit-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LIMIT = 100_000


@pytest.fixture(params=["this FastAPI", "a FastAPI without max_body_size"])
def live(request, tmp_path, monkeypatch):
    if request.param != "this FastAPI":  # older releases take the argument and do nothing with it
        monkeypatch.setattr(fastapi._body_limit, "wrap_app_with_body_limit", lambda app, size: app)
    settings = get_settings(api_token=TOKEN, db_path=tmp_path / "jobs.db", runs_root=tmp_path / "runs",
                            ray_address=f"http://127.0.0.1:{free_port()}", reconcile_seconds=60,
                            max_body_bytes=LIMIT)  # fmt: skip
    with live_service(settings) as live:
        yield live


def _chunks(total: int, size: int = 8192):
    yield b'{"name": "'
    for _ in range(total // size):
        yield b"x" * size
    yield b'"}'


def test_an_oversize_body_gets_413_with_or_without_a_content_length(live):
    url = f"{live.url}/v1/jobs"
    declared = httpx.post(url, content=b"x" * (LIMIT + 1), headers=AUTH, timeout=30)
    assert declared.status_code == 413 and "max_body_bytes" in declared.json()["detail"]
    chunked = httpx.post(url, content=_chunks(4 * LIMIT), headers=AUTH, timeout=30)  # no Content-Length
    assert chunked.status_code == 413 and "max_body_bytes" in chunked.json()["detail"]
    small = httpx.post(url, content=_chunks(LIMIT // 2), headers=AUTH, timeout=30)
    assert small.status_code == 422  # read whole and validated: only the limit refuses with 413
    assert httpx.get(url, headers=AUTH, timeout=30).json()["total"] == 0
