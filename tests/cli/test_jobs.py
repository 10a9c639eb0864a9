"""`slimray submit/status/cancel/logs` against the real service (Ray down: jobs stay queued)."""

from __future__ import annotations

import os

import pytest

from slimray.cli.jobs import watch
from slimray.core.jobstate import JobState
from slimray.service.settings import get_settings
from tests.cli.helpers import slimray
from tests.service_helpers import free_port, running_service

TOKEN = "cli-token"


@pytest.fixture
def service(tmp_path):
    settings = get_settings(api_token=TOKEN, db_path=tmp_path / "jobs.db", runs_root=tmp_path / "runs",
                            ray_address=f"http://127.0.0.1:{free_port()}")  # fmt: skip
    with running_service(settings) as url:
        yield url


def _cli(*args, token=TOKEN):
    env = {**os.environ, "SLIMRAY_API_TOKEN": token or ""}
    if token is None:
        env.pop("SLIMRAY_API_TOKEN")
    return slimray(*args, env=env, timeout=120)


def test_submit_status_cancel_logs(service):
    out = _cli("submit", "examples/mnist.yaml", "--server", service)
    assert out.returncode == 0, out.stdout + out.stderr
    job_id = out.stdout.split("submitted job ")[1].split()[0]
    listing = _cli("status", "--server", service)
    assert listing.returncode == 0 and job_id in listing.stdout and "queued" in listing.stdout
    one = _cli("status", job_id, "--server", service)
    assert one.returncode == 0 and f"{job_id}  mnist  queued" in one.stdout
    logs = _cli("logs", job_id, "--server", service)
    assert logs.returncode == 0 and logs.stdout == ""
    cancelled = _cli("cancel", job_id, "--server", service)
    assert cancelled.returncode == 0 and "cancelled" in cancelled.stdout
    again = _cli("cancel", job_id, "--server", service)
    assert again.returncode == 2 and "already cancelled" in again.stdout
    watched = _cli("status", job_id, "--watch", "--server", service)
    assert watched.returncode == 0 and "cancelled" in watched.stdout


def test_client_errors_are_one_clear_line(service, tmp_path):
    assert "unauthorized" in _cli("status", "--server", service, token="wrong").stdout
    assert "no job 'nope'" in _cli("status", "nope", "--server", service).stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {source: seed_cnn}\ndata: {source: mnist}\ntrain: {epochs: 0}\n")
    out = _cli("submit", str(bad), "--server", service)
    assert out.returncode == 2 and "train.epochs" in out.stdout
    down = _cli("status", "--server", f"http://127.0.0.1:{free_port()}")
    assert down.returncode == 2 and "cannot reach the slimray service" in " ".join(down.stdout.split())


class _FakeClient:
    """Answers `get` with the next state in a scripted sequence."""

    def __init__(self, states):
        self.states = list(states)

    def get(self, job_id):
        return {"id": job_id, "name": "j", "state": self.states.pop(0)}


def test_watch_prints_each_change_once_and_stops_at_a_terminal_state(capsys):
    client = _FakeClient([JobState.QUEUED, JobState.QUEUED, JobState.RUNNING, JobState.SUCCEEDED, "never"])
    job = watch(client, "abc", interval=0)
    assert job["state"] == JobState.SUCCEEDED and client.states == ["never"]
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("  ")[2] for line in lines] == ["queued", "running", "succeeded"]
