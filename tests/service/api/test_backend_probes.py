"""Backend probes off the request path (issue 23 H1), with a fake executor whose probe hangs or
fails (the fault lives here, not in the service): a submission waits at most
`ray_timeout_seconds`, one probe runs per backend at a time, a failure is cached for a short TTL."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from slimray.service.api.backend_checks import BackendChecks
from slimray.service.executor import RayJobExecutor, RayUnavailable
from slimray.service.settings import get_settings
from tests.service_helpers import free_port, running_service

TOKEN = "probe-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SPEC = {"name": "hvd", "backend": "horovod", "model": {"source": "mlp"}, "data": {"source": "synthetic"},
        "train": {"steps": 2}, "scaling": {"num_workers": 1}}  # fmt: skip


class HangingProbes(RayJobExecutor):
    """Ray is down (a free port), and `check_backend` blocks until the test releases it, then
    answers `answer` or raises `error`."""

    def __init__(self, answer: str | None = "horovod is not on this image (test)", error: str | None = None):
        super().__init__(f"http://127.0.0.1:{free_port()}", "python", "http://127.0.0.1:9", None, 1.0)
        self.release, self.answer, self.error = threading.Event(), answer, error
        self.calls = 0

    def check_backend(self, backend: str, timeout: float = 120.0) -> str | None:
        self.calls += 1
        self.release.wait(20)
        if self.error:
            raise RayUnavailable(self.error)
        return self.answer


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def test_concurrent_posts_return_promptly_and_reads_answer_while_a_probe_hangs(tmp_path):
    """Regression: 45 POSTs with `backend: horovod` against a slow probe took every worker
    thread; GET /v1/jobs timed out, and each waiting POST probed again, one at a time."""
    settings = get_settings(api_token=TOKEN, db_path=tmp_path / "j.db", runs_root=tmp_path / "runs",
                            ray_timeout_seconds=1, reconcile_seconds=60)  # fmt: skip
    executor = HangingProbes()
    try:
        with (
            running_service(settings, executor=executor) as url,
            httpx.Client(base_url=url, timeout=30) as client,
        ):
            with ThreadPoolExecutor(45) as pool:
                posts = [pool.submit(_timed, lambda: client.post("/v1/jobs", json=SPEC, headers=AUTH))
                         for _ in range(45)]  # fmt: skip
                time.sleep(0.5)
                listed, took = _timed(lambda: client.get("/v1/jobs", params={"limit": 1}, headers=AUTH))
                assert listed.status_code == 200 and took < 2, took
                results = [p.result(timeout=30) for p in posts]
            assert all(r.status_code == 201 for r, _ in results), {r.status_code for r, _ in results}
            assert max(took for _, took in results) < 5, sorted(took for _, took in results)[-3:]
            assert executor.calls == 1  # one probe under way, not one per request
            executor.release.set()
            time.sleep(0.2)
            refused = client.post("/v1/jobs", json=SPEC, headers=AUTH)
            assert refused.status_code == 422 and "horovod is not on this image (test)" in refused.text
            assert executor.calls == 1
    finally:
        executor.release.set()
        executor.close()


def test_a_failed_probe_is_cached_for_its_ttl_then_asked_again():
    executor, clock = HangingProbes(error="Ray answered 503"), Clock()
    executor.release.set()
    checks = BackendChecks(executor, wait_seconds=5, failure_ttl=30, clock=clock)
    for _ in range(3):
        with pytest.raises(RayUnavailable, match="Ray answered 503"):
            checks.missing("horovod")
    assert executor.calls == 1
    clock.now = 31
    executor.error = None
    assert checks.missing("horovod") == "horovod is not on this image (test)"
    clock.now = 10_000  # an answer stands for the service's life
    assert checks.missing("horovod") == "horovod is not on this image (test)" and executor.calls == 2
    assert checks.missing("tf-collective") is None and executor.calls == 2  # built in: no probe
    executor.close()


def test_a_submission_waits_at_most_the_ray_timeout_and_the_probe_goes_on():
    executor = HangingProbes()
    checks = BackendChecks(executor, wait_seconds=0.3)
    start = time.perf_counter()
    with pytest.raises(RayUnavailable, match="still running after 0.3 s"):
        checks.missing("horovod")
    assert time.perf_counter() - start < 1.5
    executor.release.set()
    time.sleep(0.1)
    assert checks.missing("horovod") == "horovod is not on this image (test)" and executor.calls == 1
    executor.close()
