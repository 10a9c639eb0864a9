"""End to end, all real: `slimray serve --local` (its own Ray head, token auth on) on 127.0.0.1,
a Prometheus server scraping /metrics with a bearer token, the MNIST job submitted with
`slimray submit`; the service is killed and restarted mid-job and nothing is lost; when the
service stops, so does the Ray head it started."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from tests.charts.k8s_checks import helm_template
from tests.conftest import need_tool
from tests.prom_helpers import sparsity_job_exprs, wait_for_data
from tests.service_helpers import free_port, wait_for

pytestmark = pytest.mark.timeout(1200)
TOKEN = "e2e-token"
BIN = Path(sys.executable).parent


_wait = wait_for


def _get(url: str, **kwargs):
    try:
        return httpx.get(url, timeout=5, **kwargs)
    except httpx.HTTPError:
        return None


class Service:
    """`slimray serve --local` as a real process."""

    def __init__(self, workdir: Path, port: int, env: dict[str, str]):
        self.workdir, self.port, self.env = workdir, port, env
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None
        self.log = workdir / "service.log"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [str(BIN / "slimray"), "serve", "--local", "--host", "127.0.0.1",
             "--port", str(self.port), "--num-cpus", "4"],
            cwd=self.workdir, env=self.env, stdout=self.log.open("a"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        _wait(lambda: (r := _get(f"{self.url}/healthz")) is not None and r.status_code == 200,
              120, "the service to answer", 0.5)  # fmt: skip

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def job(self, job_id: str, expect_active: bool = True) -> dict | None:
        r = _get(f"{self.url}/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {TOKEN}"})
        job = r.json() if r is not None and r.status_code == 200 else None
        if expect_active and job and job["state"] in ("failed", "cancelled"):
            raise AssertionError(f"job {job_id} ended {job['state']}: {job.get('error')}")
        return job


@pytest.fixture
def stack(tmp_path):
    prometheus = need_tool("prometheus")
    port, dashboard, gcs, prom_port = free_port(), free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "SLIMRAY_API_TOKEN": TOKEN,
        "SLIMRAY_DB_PATH": str(tmp_path / "state" / "jobs.db"),
        "SLIMRAY_RUNS_ROOT": str(tmp_path / "state" / "runs"),
        "SLIMRAY_RAY_ADDRESS": f"http://127.0.0.1:{dashboard}",
        "SLIMRAY_RAY_GCS_PORT": str(gcs),
        "SLIMRAY_RECONCILE_SECONDS": "2",
        "SLIMRAY_METRICS_TOKEN": "scrape-token",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        # the local Ray's temp dir goes under this (short: socket paths), so the teardown can
        # find this test's Ray processes and no one else's
        "TMPDIR": tempfile.mkdtemp(prefix="sre2e", dir="/tmp"),
    }
    for key in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN"):
        env.pop(key, None)
    service = Service(tmp_path, port, env)
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: slimray\n    honor_labels: true\n"  # our `job` label names the training job
        "    authorization: {type: Bearer, credentials: scrape-token}\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
    )
    prom = subprocess.Popen(
        [prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdout=(tmp_path / "prometheus.log").open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        service.start()
        prom_url = f"http://127.0.0.1:{prom_port}"
        _wait(lambda: (r := _get(f"{prom_url}/-/ready")) is not None and r.status_code == 200,
              60, "Prometheus to be ready")  # fmt: skip
        yield service, prom_url, env
    finally:
        service.stop()
        prom.terminate()
        prom.wait(30)
        _kill_processes_under(env["TMPDIR"])  # whatever of this test's Ray is left (not `ray stop`,
        # which would stop every Ray on the machine, other tests' and other users')


def _kill_processes_under(marker: str) -> None:
    import psutil

    for proc in psutil.process_iter(["cmdline"]):
        if marker in " ".join(proc.info["cmdline"] or []):
            with contextlib.suppress(psutil.Error):
                proc.kill()


def _promql(prom_url: str, query: str) -> list[dict]:
    r = _get(f"{prom_url}/api/v1/query", params={"query": query})
    return r.json()["data"]["result"] if r is not None and r.status_code == 200 else []


def _alert_metrics() -> set[str]:
    """The slimray_* metrics the chart's alerts read."""
    import re

    rule = next(d for d in helm_template(sets=("monitoring.prometheusRule.enabled=true",))
                if d["kind"] == "PrometheusRule")  # fmt: skip
    return {
        m
        for g in rule["spec"]["groups"]
        for r in g["rules"]
        for m in re.findall(r"slimray_[a-z_]+", r["expr"])
    }


def test_mnist_job_through_the_service_with_prometheus_and_a_restart(stack):
    service, prom_url, env = stack
    submit = subprocess.run(
        [str(BIN / "slimray"), "submit", "examples/mnist.yaml", "--server", service.url],
        capture_output=True, text=True, env=env, timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert submit.returncode == 0, submit.stdout + submit.stderr
    job_id = submit.stdout.split("submitted job ")[1].split()[0]

    running = _wait(lambda: (j := service.job(job_id)) and j["state"] == "running"
                    and (j["progress"].get("step") or 0) > 0 and j, 600, "the job to run")  # fmt: skip
    assert running["metrics"]["samples_per_second"] > 0

    _wait(lambda: (j := service.job(job_id)) and j["prune_events"], 300, "the first prune event")
    # one scrape in which the job has been pruned and runs faster than its unpruned phase
    query = (f'slimray_throughput_gain_ratio{{job="{job_id}"}} > 1 '
             f'and on(job) slimray_prune_events_total{{job="{job_id}"}} >= 1')  # fmt: skip
    gain = _wait(lambda: _promql(prom_url, query), 120, "a throughput gain above 1 after pruning")
    assert float(gain[0]["value"][1]) > 1.0

    before = service.job(job_id)
    assert before["state"] == "running"
    service.kill()  # SIGKILL mid-job: no shutdown hook runs
    time.sleep(3)
    service.start()
    after = service.job(job_id)
    assert after is not None and after["spec"] == before["spec"]
    assert len(after["prune_events"]) >= len(before["prune_events"])
    assert [t["to_state"] for t in after["transitions"]][:2] == ["queued", "running"]

    final = _wait(lambda: (j := service.job(job_id)) and j["state"] in ("succeeded", "failed",
                  "cancelled") and j, 600, "the job to end")  # fmt: skip
    assert final["state"] == "succeeded", final.get("error")
    assert len(final["prune_events"]) == 3
    assert [t["to_state"] for t in final["transitions"]] == ["queued", "running", "succeeded"]
    run_dir = Path(env["SLIMRAY_RUNS_ROOT"]) / job_id
    for path in (run_dir, run_dir / "report.json", Path(env["SLIMRAY_DB_PATH"])):
        assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"  # umask 077
    report = json.loads((run_dir / "report.json").read_text())
    assert report["state"] == "succeeded" and report["exported_accuracy"] >= 0.95
    _wait(lambda: _promql(prom_url, 'slimray_jobs{state="succeeded"} == 1'), 30,
          "Prometheus to scrape the final state")  # fmt: skip
    # every dashboard query answers from what Prometheus scraped of this service and job (a
    # sparsity job: the threshold's panel stays empty; tests/service/test_metrics.py has it)
    counts = wait_for_data(prom_url, sparsity_job_exprs(job_id), 60)
    assert all(counts.values()), counts
    # and every metric the alerts read is there (a failure's info series only once a job fails)
    # (polled: under load one query may time out and read as absent)
    expected = _alert_metrics() - {"slimray_job_failed_info"}
    present = _wait(lambda: (p := {m for m in _alert_metrics() if _promql(prom_url, f"count({m})")})
                    >= expected and p, 60, "every metric the alerts read")  # fmt: skip
    assert _alert_metrics() - present == {"slimray_job_failed_info"}, present
    logs = subprocess.run([str(BIN / "slimray"), "logs", job_id, "--server", service.url],
                          capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert logs.returncode == 0 and f"job {job_id} succeeded" in logs.stdout

    ray_token = (Path(env["SLIMRAY_DB_PATH"]).parent / "ray_token").read_text().strip()
    dashboard = env["SLIMRAY_RAY_ADDRESS"]
    assert _get(f"{dashboard}/api/jobs/").status_code == 401  # Ray wants its token
    authed = _get(f"{dashboard}/api/jobs/", headers={"Authorization": f"Bearer {ray_token}"})
    assert TOKEN not in authed.text  # the admin token is in no job's runtime_env
    service.stop()  # SIGTERM: the restarted service adopted the head and stops it
    _wait(lambda: _get(f"{dashboard}/api/version") is None, 60, "the Ray head to stop")
    assert not (Path(env["SLIMRAY_DB_PATH"]).parent / "ray_head.json").exists()
