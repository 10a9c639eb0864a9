"""A real Prometheus for tests: started on a free port with a given scrape config, queried over
its HTTP API; and the dashboard's and alerts' PromQL, to check each returns data."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import yaml

from tests.conftest import need_tool
from tests.service_helpers import free_port

DASHBOARD = Path(__file__).resolve().parents[1] / "charts" / "slimray" / "files" / "dashboard.json"
SERVICE_ONLY = ("slimray_jobs", "slimray_http_request_duration_seconds")  # not from a driver
THRESHOLD_ONLY = ("slimray_prune_threshold",)  # only a job with prune.threshold has it
TARGET_ONLY = ("slimray_prune_target_ratio", "slimray_prune_kept_ratio")  # only one with prune.target
# a driver's Ray counter is exported once incremented: only a job whose budget undid an event has it
# (the service exposes every job's count, 0 included)
ROLLED_BACK_ONLY = ("slimray_prune_rollbacks",)


def sparsity_job_exprs(job: str) -> list[str]:
    """The dashboard's queries a job pruned to a sparsity answers (all but the other rules')."""
    return [e for e in dashboard_exprs(job) if not any(m in e for m in THRESHOLD_ONLY + TARGET_ONLY)]


def target_job_exprs(job: str) -> list[str]:
    """The dashboard's queries a job pruned to a cost target answers through its driver's Ray
    metrics (all but the threshold's and a rollback's)."""
    return [e for e in dashboard_exprs(job) if not any(m in e for m in THRESHOLD_ONLY + ROLLED_BACK_ONLY)]


def dashboard_exprs(job: str) -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    return [e.replace("$job", job) for e in exprs]


def podmonitor_relabel_configs(path: Path) -> list[dict]:
    """A PodMonitor's metricRelabelings as Prometheus `metric_relabel_configs`."""
    doc = next(d for d in yaml.safe_load_all(path.read_text()) if d and d["kind"] == "PodMonitor")
    keys = {"sourceLabels": "source_labels", "targetLabel": "target_label"}
    return [{keys.get(k, k): v for k, v in rule.items()}
            for rule in doc["spec"]["podMetricsEndpoints"][0]["metricRelabelings"]]  # fmt: skip


@contextlib.contextmanager
def prometheus(tmp_path: Path, scrape_configs: list[dict]) -> Iterator[str]:
    binary = need_tool("prometheus")
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                                      "scrape_configs": scrape_configs}))  # fmt: skip
    proc = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=(tmp_path / "prometheus.log").open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    break
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


def query(url: str, expr: str) -> list[dict]:
    response = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10)
    body = response.json()
    assert body["status"] == "success", (expr, body)
    return body["data"]["result"]


def wait_for_data(url: str, exprs: list[str], timeout: float) -> dict[str, int]:
    """Series each expression returns, once all return some (or at the timeout)."""
    deadline = time.time() + timeout
    while True:
        counts = {e: len(query(url, e)) for e in exprs}
        if all(counts.values()) or time.time() > deadline:
            return counts
        time.sleep(1)
