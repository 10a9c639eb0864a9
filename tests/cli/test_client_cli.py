"""`slimray submit/status/cancel/logs` against the real service (Ray down: jobs stay queued)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from slimray.service.settings import get_settings
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
    return subprocess.run([sys.executable, "-m", "slimray.cli", *args], capture_output=True,
                          text=True, env=env, timeout=120)  # fmt: skip


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
