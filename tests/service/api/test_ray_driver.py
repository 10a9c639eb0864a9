"""The service's drivers on a real Ray head (issue 23): a driver's log is read from Ray's tail API
as a stream, so concurrent reads of a large log hold only a bounded tail (M2); Ray's job list shows
a driver's one-time claim, spent at its start, never its event token (L5); a driver killed from
outside is submitted again, resuming, and the job's history says why (point 6)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import tracemalloc

import httpx
import pytest
import yaml

from slimray.core.jobstate import JobState
from slimray.service.api.credentials import job_event_token
from slimray.service.executor import RayJobExecutor
from slimray.service.localray import LocalRay
from slimray.service.settings import get_settings
from tests.service.live import live_service
from tests.service_helpers import free_port, wait_for

pytestmark = pytest.mark.timeout(600)
RAY_TOKEN = "fedcba9876543210" * 4
TOKEN = "logs-token"
LINES = 200_000  # 105 bytes each: a 21 MB log
PRINTER = ("import sys; w = sys.stdout.write; "
           f"[w(f'line {{i:08d}} ' + 'x' * 91 + '\\\\n') for i in range({LINES})]; "
           "print('THE END')")  # fmt: skip


@pytest.fixture(scope="module")
def head():
    head = LocalRay.start(f"http://127.0.0.1:{free_port()}", RAY_TOKEN, 2, free_port())
    yield head
    head.stop()


@pytest.fixture(scope="module")
def big_log(head) -> str:
    """A finished Ray job whose driver printed 21 MB; its submission id."""
    body = {"entrypoint": f'{sys.executable} -c "{PRINTER}"', "submission_id": "big-log"}
    auth = {"Authorization": f"Bearer {RAY_TOKEN}"}
    assert httpx.post(f"{head.address}/api/jobs/", json=body, headers=auth, timeout=30).status_code == 200
    ex = RayJobExecutor(head.address, sys.executable, "http://127.0.0.1:9", RAY_TOKEN, timeout=30)
    wait_for(lambda: ex.status("big-log").state == JobState.SUCCEEDED, 180, "the printing job", 0.5)
    ex.close()
    return "big-log"


def test_concurrent_reads_of_a_big_log_hold_only_its_tail(head, big_log, tmp_path):
    """Regression: 3 concurrent reads of a 100 MB log took the service from 232 to 824 MB RSS
    (the whole log fetched as one JSON string, decoded and encoded again)."""
    settings = get_settings(api_token=TOKEN, db_path=tmp_path / "jobs.db", runs_root=tmp_path / "runs",
                            ray_address=head.address, ray_token=RAY_TOKEN, reconcile_seconds=600,
                            max_log_bytes=1_000_000, keep_warm=False)  # fmt: skip
    with live_service(settings) as live:
        store = live.app.state.context.store
        job = store.create("printer", {})
        assert store.claim_submission(job.id, big_log)
        store.mark_submitted(job.id)
        answers: list[dict] = []
        get = lambda: answers.append(httpx.get(  # noqa: E731
            f"{live.url}/v1/jobs/{job.id}/logs", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120
        ).json())  # fmt: skip
        tracemalloc.start()
        readers = [threading.Thread(target=get) for _ in range(3)]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join(180)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert len(answers) == 3
    for answer in answers:
        assert answer["truncated"] and answer["logs"].endswith(f"line {LINES - 1:08d} {'x' * 91}\nTHE END\n")
        assert 900_000 < len(answer["logs"].encode()) <= 1_000_000
    assert peak < 20 * 2**20, f"peak {peak / 2**20:.0f} MiB for a 21 MB log read 3 times"


def test_a_job_ray_never_heard_of_has_an_empty_log(head):
    ex = RayJobExecutor(head.address, sys.executable, "http://127.0.0.1:9", RAY_TOKEN, timeout=30)
    log = ex.logs("no-such-job", 1000)
    assert (log.text, log.truncated) == ("", False)


def _tiny_spec() -> dict:
    with open("examples/mnist.yaml") as f:
        spec = yaml.safe_load(f)
    spec.update(name="tiny", prune=None, scaling={"num_workers": 1})
    spec["train"].update(steps=20, epochs=None)
    return spec


def _settings(head, tmp_path, port):
    return get_settings(api_token=TOKEN, db_path=tmp_path / "jobs.db", runs_root=tmp_path / "runs",
                        ray_address=head.address, ray_token=RAY_TOKEN, driver_python=sys.executable,
                        service_url=f"http://127.0.0.1:{port}", reconcile_seconds=0.5,
                        keep_warm=False)  # warm workers: test_ray_service.py  # fmt: skip


def _ray(head, path: str):
    return httpx.get(f"{head.address}{path}", headers={"Authorization": f"Bearer {RAY_TOKEN}"}, timeout=30)


def test_a_driver_spends_its_claim_and_one_killed_from_outside_is_resubmitted(head, tmp_path):
    """Regressions: `/api/jobs/` listed each job's SLIMRAY_EVENT_TOKEN, so any holder of the Ray
    token (every driver) could post events for every job (L5); a lost driver failed its job, and a
    user resubmitted it by hand, from step 0 (point 6)."""
    port = free_port()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    spec = _tiny_spec()
    spec["train"].update(steps=5000, report_every=5)
    with live_service(_settings(head, tmp_path, port), port) as live:
        job_id = httpx.post(f"{live.url}/v1/jobs", json=spec, headers=auth, timeout=30).json()["id"]
        job = lambda: httpx.get(f"{live.url}/v1/jobs/{job_id}", headers=auth, timeout=30).json()  # noqa: E731
        wait_for(lambda: job()["progress"].get("step"), 180, "the driver's first report", 0.5)
        first = job()["ray_job_id"]
        _no_event_token_in_rays_list(live, head, job_id, first)
        pid = _ray(head, f"/api/jobs/{first}").json()["driver_info"]["pid"]
        os.kill(int(pid), signal.SIGKILL)  # from outside, as a lost node or an OOM kill would
        again = wait_for(lambda: (j := job())["ray_job_id"] != first and j["submitted_at"] and j, 120,
                         "the resubmission", 0.5)  # fmt: skip
        assert again["ray_job_id"] == f"{first}-r1" and again["state"] == "running"
        [note] = [t["reason"] for t in again["transitions"] if "driver lost" in t["reason"]]
        assert "killed from outside (SIGKILL" in note and "resubmission 1 of 2" in note
        env = _ray(head, f"/api/jobs/{first}-r1").json()["runtime_env"]["env_vars"]
        assert env["SLIMRAY_RESUME"] == "1" and env["SLIMRAY_EVENT_CLAIM"]
        assert httpx.delete(f"{live.url}/v1/jobs/{job_id}", headers=auth, timeout=30).status_code == 200
        wait_for(lambda: not job()["stop_pending"], 60, "Ray to stop the resubmitted driver")


def _no_event_token_in_rays_list(live, head, job_id: str, ray_job_id: str) -> None:
    """Ray's job list holds the driver's claim, spent (a replay is refused and recorded), and no
    event token; the driver's reports arrived with the token it got for the claim."""
    listed = _ray(head, "/api/jobs/")
    [ours] = [j for j in listed.json() if j["submission_id"] == ray_job_id]
    env = ours["runtime_env"]["env_vars"]
    assert job_event_token(TOKEN, job_id) not in listed.text and "SLIMRAY_EVENT_TOKEN" not in env
    replay = httpx.post(f"{live.url}/v1/jobs/{job_id}/claim", timeout=30,
                        headers={"Authorization": f"Bearer {env['SLIMRAY_EVENT_CLAIM']}"})  # fmt: skip
    assert replay.status_code == 409, replay.text
    history = httpx.get(f"{live.url}/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {TOKEN}"},
                        timeout=30).json()["transitions"]  # fmt: skip
    assert "presented again: refused" in history[-1]["reason"]
