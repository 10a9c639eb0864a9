"""The service's backend check against real Ray heads: a probe job's tiny Ray task says whether
Horovod runs on the cluster; `backend: horovod` is refused at submission where it does not, the
answer is asked once and cached, and a cluster that has it accepts the job."""

from __future__ import annotations

import contextlib
import os
import sys

import httpx
import pytest
from fastapi.testclient import TestClient

from slimray.service.api.main import create_app
from slimray.service.executor import RayJobExecutor
from slimray.service.localray import LocalRay
from slimray.service.settings import get_settings
from tests.conftest import need_horovod
from tests.service_helpers import free_port

pytestmark = pytest.mark.timeout(600)
RAY_TOKEN = "fedcba9876543210" * 4
AUTH = {"Authorization": "Bearer admin"}


@contextlib.contextmanager
def _head(pythonpath: str | None = None):
    before = os.environ.get("PYTHONPATH")
    if pythonpath:  # the head's processes (and the probe jobs' drivers and tasks) inherit it
        os.environ["PYTHONPATH"] = pythonpath + (os.pathsep + before if before else "")
    try:
        head = LocalRay.start(f"http://127.0.0.1:{free_port()}", RAY_TOKEN, 2, free_port())
    finally:
        if pythonpath:
            os.environ.pop("PYTHONPATH") if before is None else os.environ.update(PYTHONPATH=before)
    try:
        yield head
    finally:
        head.stop()


def _spec(out, backend="horovod"):
    return {"name": "hvd", "backend": backend, "model": {"source": "mlp"},
            "data": {"source": "synthetic"}, "train": {"steps": 2}, "scaling": {"num_workers": 1},
            "output": {"dir": str(out)}}  # fmt: skip


def _settings(head, tmp_path):
    return get_settings(
        api_token="admin", db_path=tmp_path / "j.db", runs_root=tmp_path / "runs",
        ray_address=head.address, ray_token=RAY_TOKEN, driver_python=sys.executable,
        reconcile_seconds=60, ray_timeout_seconds=120,  # a submission waits for the probe's answer
        keep_warm=False,  # warm workers: test_ray_service.py
    )  # fmt: skip


def _probe_jobs(head) -> int:
    jobs = httpx.get(f"{head.address}/api/jobs/", headers={"Authorization": f"Bearer {RAY_TOKEN}"},
                     timeout=10).json()  # fmt: skip
    return sum(1 for j in jobs if (j.get("metadata") or {}).get("slimray_probe") == "horovod")


def test_a_cluster_without_horovod_refuses_the_backend_at_submission(tmp_path):
    shadow = tmp_path / "shadow" / "horovod"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('horovod is not on this image (test)')\n")
    with _head(str(shadow.parent)) as head, TestClient(create_app(_settings(head, tmp_path))) as client:
        for _ in range(2):
            response = client.post("/v1/jobs", json=_spec(tmp_path / "out"), headers=AUTH)
            assert response.status_code == 422, response.text
            text = response.text
            assert "backend" in text and "backend 'horovod' cannot run on this Ray cluster: " in text
            assert "horovod is not on this image (test)" in text and "make horovod" in text
        assert _probe_jobs(head) == 1  # asked once, then the cached answer
        assert client.get("/v1/jobs", headers=AUTH).json()["total"] == 0  # nothing stored
        # the default backend needs no probe
        assert (
            client.post("/v1/jobs", json=_spec(tmp_path / "out", "tf-collective"), headers=AUTH).status_code
            == 201
        )
        assert _probe_jobs(head) == 1


def test_a_cluster_with_horovod_accepts_the_backend(tmp_path):
    need_horovod()
    with _head() as head:
        executor = RayJobExecutor(head.address, sys.executable, "http://127.0.0.1:9", RAY_TOKEN, timeout=10)
        assert executor.check_backend("horovod") is None
        with TestClient(create_app(_settings(head, tmp_path), executor)) as client:
            response = client.post("/v1/jobs", json=_spec(tmp_path / "out"), headers=AUTH)
            assert response.status_code == 201, response.text
        executor.close()
