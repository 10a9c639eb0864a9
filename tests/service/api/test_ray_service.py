"""The service's Ray side against a real Ray head started as `serve --local` starts it
(issue 8, items 1, 2, 12, 13, 15): token auth on, dashboard on loopback, no service secret
in Ray's environment, idempotent submission, cancels that really stop the driver."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import psutil
import pytest
import yaml
from fastapi.testclient import TestClient

from slimray.core.jobstate import JobState
from slimray.service.api.main import create_app
from slimray.service.api.reconcile import Reconciler, reconcile_all
from slimray.service.executor import DriverLaunch, RayJobExecutor, submission_id
from slimray.service.localray import LocalRay
from slimray.service.settings import get_settings
from slimray.service.store import Store
from tests.service_helpers import free_port

pytestmark = pytest.mark.timeout(600)
RAY_TOKEN = "0123456789abcdef" * 4
LEAK = "service-admin-secret"


@pytest.fixture(scope="module")
def head():
    """A head started with the service's admin token in the environment (it must not leak)."""
    os.environ["SLIMRAY_API_TOKEN"] = LEAK
    try:
        head = LocalRay.start(f"http://127.0.0.1:{free_port()}", RAY_TOKEN, 4, free_port())
    finally:
        os.environ.pop("SLIMRAY_API_TOKEN")
    yield head
    head.stop()


def _wait(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _executor(head, token=RAY_TOKEN) -> RayJobExecutor:
    return RayJobExecutor(head.address, sys.executable, "http://127.0.0.1:9", token, timeout=60)


def test_ray_refuses_callers_without_its_token(head):
    """Regression (item 1): `serve --local` started Ray with authentication disabled."""
    body = {"entrypoint": "echo pwned", "submission_id": "intruder"}
    assert httpx.post(f"{head.address}/api/jobs/", json=body, timeout=10).status_code == 401
    assert not _executor(head, token="wrong").reachable()
    assert _executor(head).reachable()
    gcs = next(c.laddr.port for c in psutil.net_connections("inet")
               if c.status == "LISTEN" and c.pid and "gcs_server" in " ".join(
                   psutil.Process(c.pid).cmdline()) and str(head.log.parent) in " ".join(
                   psutil.Process(c.pid).cmdline()))  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["RAY_AUTH_MODE"] = "token"
    env["RAY_AUTH_TOKEN"] = "f" * 64  # a wrong token
    code = f"import ray; ray.init(address='127.0.0.1:{gcs}'); print('joined')"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode != 0 and "joined" not in proc.stdout


def test_the_dashboard_listens_on_loopback_only(head):
    port = int(head.address.rsplit(":", 1)[1])
    listening = [c for c in psutil.net_connections("inet") if c.status == "LISTEN"]
    hosts = {c.laddr.ip for c in listening if c.laddr.port == port}
    assert hosts == {"127.0.0.1"}


def test_no_service_secret_reaches_ray_or_its_drivers(head):
    """Regression (item 2): the admin token was in every driver's environment and runtime_env."""
    headers = {"Authorization": f"Bearer {RAY_TOKEN}"}
    code = "import os; print('token=' + os.environ.get('SLIMRAY_API_TOKEN', 'absent'))"
    body = {"entrypoint": f'{sys.executable} -c "{code}"', "submission_id": "probe-env"}
    assert httpx.post(f"{head.address}/api/jobs/", json=body, headers=headers, timeout=60).status_code == 200
    ex = _executor(head)
    _wait(lambda: ex.status("probe-env").state == JobState.SUCCEEDED, 120, "the probe job")
    assert "token=absent" in ex.logs("probe-env", 10_000).text


def test_a_resubmission_after_a_crash_is_the_same_job(head, tmp_path):
    """Regression (item 13): the service died after Ray accepted a job; on restart Ray's
    "already exists" left it queued forever."""
    store = Store(tmp_path / "j.db")
    job = store.create("crashy", {"name": "x"})
    ex = _executor(head)
    launch = DriverLaunch(job.id, {"not": "a spec"}, "t")  # the driver fails fast: fine here
    assert store.claim_submission(job.id, submission_id(job.id))
    assert ex.submit(launch) == submission_id(job.id)  # Ray accepted; the service "died" here
    assert store.get(job.id).submitted_at is None
    reconcile_all(store, ex, lambda j: launch)  # the restarted service's first cycle
    assert store.get(job.id).submitted_at is not None and store.get(job.id).error is None
    jobs = httpx.get(f"{head.address}/api/jobs/", headers={"Authorization": f"Bearer {RAY_TOKEN}"},
                     timeout=10).json()  # fmt: skip
    assert [j["submission_id"] for j in jobs].count(submission_id(job.id)) == 1


class RayGone(RayJobExecutor):
    """Fault injection: Ray's job API does not answer the probe (a restarting head)."""

    def session_name(self) -> str | None:
        return None


def _warm_jobs(head) -> list[str]:
    jobs = httpx.get(f"{head.address}/api/jobs/", headers={"Authorization": f"Bearer {RAY_TOKEN}"},
                     timeout=10).json()  # fmt: skip
    return sorted(j["submission_id"] for j in jobs if j["submission_id"].startswith("slimray-warm-"))


def test_the_service_keeps_ray_warm_once_per_session(head, tmp_path):
    """Issue 27: the reconciler submits the warm job (`python -m slimray.runtime.warm`) once Ray
    answers, not every cycle nor after Ray was briefly gone (the same session: its keeper lives).
    When a new session or more nodes call for another: tests/service/api/test_reconcile.py."""
    ex = _executor(head)
    reconciler = Reconciler(Store(tmp_path / "j.db"), ex, lambda job: None, 1.0, 60.0, keep_warm=True)
    reconciler.run_once()
    reconciler.run_once()
    (first,) = _warm_jobs(head)
    _wait(lambda: ex.status(first).state in (JobState.SUCCEEDED, JobState.FAILED), 300, "the warm job")
    log = ex.logs(first, 10_000).text
    assert ex.status(first).state == JobState.SUCCEEDED, log[-2000:]
    assert "warm worker processes for jobs of 4 workers" in log  # sized to the head's 4 CPUs
    for executor in (RayGone, RayJobExecutor):
        reconciler.executor = executor(head.address, sys.executable, "http://127.0.0.1:9", RAY_TOKEN)
        reconciler.run_once()
    assert _warm_jobs(head) == [first]


def test_without_keep_warm_no_warm_job_is_submitted(head, tmp_path):
    before = _warm_jobs(head)
    Reconciler(Store(tmp_path / "j.db"), _executor(head), lambda job: None, 1.0, 60.0).run_once()
    assert _warm_jobs(head) == before


def _tiny_spec(out):
    with open("examples/mnist.yaml") as f:
        spec = yaml.safe_load(f)
    spec.update(name="tiny", prune=None, scaling={"num_workers": 1})
    spec["train"].update(steps=2000, epochs=None)
    return spec


def test_cancel_right_after_submit_stops_the_driver_on_ray(head, tmp_path):
    """Regression (item 12): cancelled in the store, still running on Ray (6 of 6 tries)."""
    settings = get_settings(
        api_token="admin", db_path=tmp_path / "j.db", runs_root=tmp_path / "runs",
        ray_address=head.address, ray_token=RAY_TOKEN, driver_python=sys.executable,
        reconcile_seconds=0.2,
    )  # fmt: skip
    auth = {"Authorization": "Bearer admin"}
    ex = _executor(head)
    with TestClient(create_app(settings)) as client:
        ids = []
        for _ in range(3):
            job_id = client.post("/v1/jobs", json=_tiny_spec(tmp_path), headers=auth).json()["id"]
            if ids:  # the first is cancelled at once; the others once Ray has them
                _wait(lambda j=job_id: client.get(f"/v1/jobs/{j}", headers=auth).json()["submitted_at"],
                      30, "the submission")  # fmt: skip
            assert client.delete(f"/v1/jobs/{job_id}", headers=auth).json()["state"] == "cancelled"
            ids.append(job_id)
        store = client.app.state.context.store
        _wait(lambda: not store.pending_stops(), 60, "Ray to confirm the stops")
        for job_id in ids:
            job = store.get(job_id)
            assert job.state == JobState.CANCELLED
            if job.submitted_at is not None:
                assert ex.status(job.ray_job_id).state in (JobState.CANCELLED, None), job_id


def test_stopping_the_head_leaves_no_ray_process(head):
    """Regression (item 15): `serve --local` left its Ray head running after it exited."""
    marker = str(head.log.parent)
    head.stop()
    left = [p.pid for p in psutil.process_iter(["cmdline"]) if marker in " ".join(p.info["cmdline"] or [])]
    assert left == [] and not _executor(head).reachable()
