"""The job API with Ray unreachable (a closed port), through FastAPI's TestClient (the app,
its store and reconciler are real; only the socket is not): auth, validation, paths,
cancellation, driver events, metrics, persistence, and no 5xx for any request."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from slimray.service.api.credentials import job_event_token
from slimray.service.api.main import create_app
from slimray.service.executor import submission_id
from slimray.service.settings import get_settings
from tests.conftest import need_tool
from tests.service_helpers import free_port

TOKEN = "test-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _spec(**overrides):
    with open("examples/mnist.yaml") as f:
        spec = yaml.safe_load(f)
    spec.update(overrides)
    return spec


@pytest.fixture
def settings(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "models").mkdir()
    return get_settings(
        api_token=TOKEN,
        db_path=tmp_path / "jobs.db",
        runs_root=tmp_path / "runs",
        data_roots=[tmp_path / "data"],
        model_roots=[tmp_path / "models"],
        ray_address=f"http://127.0.0.1:{free_port()}",  # nothing listens: Ray is down
        reconcile_seconds=0.2,
    )


@pytest.fixture
def api(settings):
    with TestClient(create_app(settings)) as client:
        yield client


def accepted_by_ray(api, job_id: str) -> None:
    """What the reconciler records once Ray accepts the driver (Ray is down in these tests)."""
    store = api.app.state.context.store
    assert store.claim_submission(job_id, submission_id(job_id)) or store.get(job_id).ray_job_id
    store.mark_submitted(job_id)


def _create(api, **overrides) -> str:
    response = api.post("/v1/jobs", json=_spec(**overrides), headers=AUTH)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_submit_and_read_a_job(api, settings):
    job_id = _create(api)
    job = api.get(f"/v1/jobs/{job_id}", headers=AUTH).json()
    assert set(job) >= {"id", "state", "spec", "progress", "metrics", "prune_events", "transitions"}
    assert job["id"] == job_id and job["state"] == "queued"
    assert job["spec"]["output"]["dir"] == str((Path(settings.runs_root) / job_id).resolve())
    listing = api.get("/v1/jobs", headers=AUTH).json()
    assert listing["total"] == 1 and listing["jobs"][0]["id"] == job_id


def test_a_job_waits_for_ray_with_the_reason(api):
    import time

    job_id = _create(api)
    deadline = time.time() + 10
    while time.time() < deadline:
        job = api.get(f"/v1/jobs/{job_id}", headers=AUTH).json()
        if job["error"]:
            break
        time.sleep(0.1)
    assert job["state"] == "queued" and "waiting for Ray" in job["error"]


def test_tokens_are_required_for_mutations_and_private_reads(api):
    assert api.post("/v1/jobs", json=_spec()).status_code == 401
    bad = {"Authorization": "Bearer wrong"}
    assert api.post("/v1/jobs", json=_spec(), headers=bad).status_code == 401
    job_id = _create(api)
    assert api.get("/v1/jobs").status_code == 401
    assert api.get(f"/v1/jobs/{job_id}", headers=bad).status_code == 401
    assert api.delete(f"/v1/jobs/{job_id}").status_code == 401
    assert api.post(f"/v1/jobs/{job_id}/events", json={"kind": "start"}).status_code == 401
    assert api.get("/healthz").status_code == 200 and api.get("/metrics").status_code == 200


def test_public_reads_setting(settings):
    with TestClient(create_app(settings.model_copy(update={"public_reads": True}))) as client:
        assert client.get("/v1/jobs").status_code == 200
        assert client.post("/v1/jobs", json=_spec()).status_code == 401


def test_invalid_specs_get_422_with_field_paths(api):
    bad = _spec(train={"epochs": 0, "batch_size": 64}, scaling={"num_workers": 0})
    response = api.post("/v1/jobs", json=bad, headers=AUTH)
    assert response.status_code == 422
    locs = {tuple(d["loc"]) for d in response.json()["detail"]}
    assert ("body", "train", "epochs") in locs and ("body", "scaling", "num_workers") in locs


@pytest.mark.parametrize(
    ("field", "value", "loc"),
    [("data", {"source": "../secrets/train.parquet"}, "data"),
     ("data", {"source": "/etc/passwd.parquet"}, "data"),
     ("data", {"source": "s3://other-bucket/x.npz"}, "data"),
     ("model", {"source": "/tmp/elsewhere/m.keras"}, "model"),
     ("model", {"source": "os:system", "kwargs": {"command": "true"}}, "model")],
)  # fmt: skip
def test_specs_reaching_outside_the_roots_are_refused(api, field, value, loc):
    response = api.post("/v1/jobs", json=_spec(**{field: value}), headers=AUTH)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", loc, "source"]
    assert api.get("/v1/jobs", headers=AUTH).json()["total"] == 0  # nothing stored


HUGE = {"source": "synthetic", "synthetic": {"samples": 1_000_000, "shape": [1024, 1024, 4]}}


@pytest.mark.parametrize(("overrides", "loc", "echoed"), [
    ({"data": HUGE}, ["body", "data", "synthetic"], "(samples 1000000 + num_classes 10) x 4194304"),
    ({"data": {**HUGE, "synthetic": {"samples": 16, "shape": [1024, 1024, 4]}},
      "train": {"steps": 10, "batch_size": 8192}},
     ["body", "train", "batch_size"], "batch_size 8192 x 4194304"),
    ({"failure": {"max_failures": -1}}, ["body", "failure", "max_failures"], "-1 (unlimited restarts)"),
    ({"failure": {"max_failures": 1_000_000_000}}, ["body", "failure", "max_failures"], "1000000000"),
])  # fmt: skip
def test_jobs_beyond_the_byte_and_restart_limits_get_422(api, overrides, loc, echoed):
    """Regression (issue 23 M5, L7): limits checked one field at a time let 16 TiB of synthetic
    data (or a 128 GiB batch) through with 201, and -1 or 10^9 restarts too."""
    response = api.post("/v1/jobs", json=_spec(**overrides), headers=AUTH)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"][0]
    assert detail["loc"] == loc and echoed in detail["msg"]
    assert "exceeds this service's limit of" in detail["msg"]
    assert api.get("/v1/jobs", headers=AUTH).json()["total"] == 0


def test_files_inside_the_roots_are_accepted_and_resolved(api, settings):
    job_id = _create(api, data={"source": "train.parquet"})
    job = api.get(f"/v1/jobs/{job_id}", headers=AUTH).json()
    assert job["spec"]["data"]["source"] == str((settings.data_roots[0] / "train.parquet").resolve())


def test_unknown_ids_are_404(api):
    for method, path in [("GET", "/v1/jobs/nope"), ("DELETE", "/v1/jobs/nope"),
                         ("GET", "/v1/jobs/nope/logs"), ("POST", "/v1/jobs/nope/events")]:  # fmt: skip
        body = {"json": {"kind": "start"}} if method == "POST" else {}
        assert api.request(method, path, headers=AUTH, **body).status_code == 404, path


def test_cancel_a_queued_job_then_again(api):
    job_id = _create(api)
    response = api.delete(f"/v1/jobs/{job_id}", headers=AUTH)
    assert response.status_code == 200 and response.json()["state"] == "cancelled"
    assert api.delete(f"/v1/jobs/{job_id}", headers=AUTH).status_code == 409
    listing = api.get("/v1/jobs", params={"state": "cancelled"}, headers=AUTH).json()
    assert [j["id"] for j in listing["jobs"]] == [job_id]


def _event(step):
    durations = {"score": 0.05, "allreduce": 0.004, "agreement": 0.003, "surgery": 0.2, "retrace": 0.5}
    return {"step": step, "digest": "d", "allreduce_bytes": 4096, "channels_before": 10,
            "channels_after": 8, "durations": durations}  # fmt: skip


def test_driver_events_drive_state_progress_and_metrics(api):
    job_id = _create(api)
    accepted_by_ray(api, job_id)
    driver = {"Authorization": f"Bearer {job_event_token(TOKEN, job_id)}"}

    def post(kind, data):  # raw JSON, NaN allowed, as a careless driver might send it
        body = json.dumps({"kind": kind, "data": data}, allow_nan=True)
        headers = {**driver, "content-type": "application/json"}
        return api.post(f"/v1/jobs/{job_id}/events", headers=headers, content=body)

    assert post("start", {"total_steps": 100}).status_code == 202
    assert api.get(f"/v1/jobs/{job_id}", headers=AUTH).json()["state"] == "running"
    report = {"step": 30, "total_steps": 100, "samples_per_second": 2500.0, "throughput_gain": 1.6,
              "params": 300000, "flops": 6000000, "sparsity": 0.25, "loss": float("nan"),
              "accuracy": 0.9, "step_time": 0.02, "val_accuracy": 0.93, "event": _event(30),
              "gradient_allreduce_bytes_per_step": 423464}  # fmt: skip
    assert post("report", report).status_code == 202
    job = api.get(f"/v1/jobs/{job_id}", headers=AUTH).json()
    assert job["progress"] == {"step": 30, "total_steps": 100}
    assert job["metrics"]["throughput_gain"] == 1.6 and job["metrics"]["loss"] is None
    assert len(job["prune_events"]) == 1
    text = api.get("/metrics", headers=AUTH).text
    assert f'slimray_throughput_gain_ratio{{job="{job_id}"}} 1.6' in text
    assert f'slimray_gradient_allreduce_bytes_per_step{{job="{job_id}"}} 423464.0' in text
    assert f'slimray_prune_events_total{{job="{job_id}"}} 1.0' in text
    assert f'slimray_score_allreduce_bytes_total{{job="{job_id}"}} 4096.0' in text
    bucket = f'slimray_prune_event_duration_seconds_bucket{{job="{job_id}",le="0.25",phase="surgery"}}'
    assert f"{bucket} 1.0" in text
    assert 'slimray_jobs{state="running"} 1.0' in text
    assert "slimray_http_request_duration_seconds_bucket{" in text
    assert post("end", {"state": "succeeded", "throughput_gain": 1.8}).status_code == 202
    job = api.get(f"/v1/jobs/{job_id}", headers=AUTH).json()
    assert job["state"] == "succeeded"
    assert [t["to_state"] for t in job["transitions"]] == ["queued", "running", "succeeded"]
    assert post("report", report).status_code == 409  # a late report changes nothing
    assert api.get(f"/v1/jobs/{job_id}", headers=AUTH).json()["progress"]["step"] == 30
    assert api.get(f"/v1/jobs/{job_id}", headers=AUTH).json()["state"] == "succeeded"


def test_metrics_pass_promtool(api):
    promtool = need_tool("promtool")
    job_id = _create(api)
    accepted_by_ray(api, job_id)
    data = {"step": 5, "samples_per_second": 10.0, "event": _event(5)}
    api.post(f"/v1/jobs/{job_id}/events", headers=AUTH, json={"kind": "report", "data": data})
    text = api.get("/metrics", headers=AUTH).text
    assert "slimray_prune_events_total" in text
    proc = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_records_survive_a_service_restart(settings):
    with TestClient(create_app(settings)) as client:
        job_id = client.post("/v1/jobs", json=_spec(), headers=AUTH).json()["id"]
        accepted_by_ray(client, job_id)
        client.post(f"/v1/jobs/{job_id}/events", headers=AUTH,
                    json={"kind": "report", "data": {"step": 7, "event": _event(5)}})  # fmt: skip
    with TestClient(create_app(settings)) as client:
        job = client.get(f"/v1/jobs/{job_id}", headers=AUTH).json()
        assert job["state"] == "running" and job["progress"]["step"] == 7
        assert len(job["prune_events"]) == 1


GARBAGE = [
    ("POST", "/v1/jobs", {"content": b"{not json"}),
    ("POST", "/v1/jobs", {"json": []}),
    ("POST", "/v1/jobs", {"json": {"model": None}}),
    ("POST", "/v1/jobs", {"json": {"model": {"source": 5}, "data": [], "train": "x"}}),
    ("POST", "/v1/jobs", {"content": b'{"name": NaN}', "headers": {"content-type": "application/json"}}),
    ("POST", "/v1/jobs", {"json": {"model": {"source": "seed_cnn"}, "data": {"source": "mnist"},
                                   "train": {"steps": 10**30}}}),
    ("GET", "/v1/jobs", {"params": {"limit": -1}}),
    ("GET", "/v1/jobs", {"params": {"limit": "many", "offset": "x"}}),
    ("GET", "/v1/jobs", {"params": {"state": "exploded"}}),
    ("GET", "/v1/jobs/%00", {}),
    ("GET", "/v1/jobs/" + "x" * 5000, {}),
    ("POST", "/v1/jobs/abc/events", {"json": {"kind": "nonsense"}}),
    ("DELETE", "/v1/jobs", {}),
    ("PUT", "/v1/jobs/abc", {"json": {}}),
    ("GET", "/nowhere", {}),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "kwargs"), GARBAGE)
def test_no_request_produces_a_5xx(api, method, path, kwargs):
    headers = {**AUTH, **kwargs.pop("headers", {})}
    response = api.request(method, path, headers=headers, **kwargs)
    assert response.status_code < 500, (response.status_code, response.text[:300])


def test_garbage_driver_events_for_a_real_job_are_not_5xx(api):
    job_id = _create(api)
    for data in [{"step": "x"}, {"event": {"no_step": 1}}, {"event": "str"}, {"state": 5}]:
        for kind in ("report", "end", "start", "worker_error"):
            response = api.post(f"/v1/jobs/{job_id}/events", headers=AUTH,
                                json={"kind": kind, "data": data})  # fmt: skip
            assert response.status_code < 500, (kind, data, response.text[:300])


def test_the_service_never_imports_tensorflow(tmp_path):
    code = (
        "import sys\n"
        "from slimray.service.api.main import create_app\n"
        "from slimray.service.settings import get_settings\n"
        f"app = create_app(get_settings(db_path='{tmp_path}/j.db'))\n"
        "import slimray.cli, slimray.cli.client, slimray.service.metrics, slimray.service.store\n"
        "import slimray.service.executor\n"
        "print(json.dumps(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", "import json\n" + code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []
