"""The chart's service and RayCluster started on one Machine, and a job through the service's API:
shared by the chart's deployment tests."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import httpx

from tests.deploy.kuberay import SERVE_PORT, Manifests, PodPlan, Workload
from tests.deploy.machine import LOOPBACK, Machine, PodFailed, machine
from tests.service_helpers import wait_for

# the seed CNN on MNIST, one Ray Train worker, one prune event: about half a minute of work
TINY_SPEC = {
    "name": "deploy-tiny",
    "model": {"source": "seed_cnn"},
    "data": {"source": "mnist"},
    "train": {"steps": 60, "batch_size": 64, "report_every": 5, "checkpoint_every": 30},
    "prune": {"criterion": "l1", "sparsity": 0.25, "schedule": {"kind": "one_shot", "step": 30}},
    "scaling": {"num_workers": 1},
}
TERMINAL = ("succeeded", "failed", "cancelled")


class Stack:
    """The started chart: the Machine, its api pod (and URL, admin token) and Ray cluster."""

    def __init__(self, m: Machine):
        self.m = m
        self.started = time.time()
        self.api = m.work.pod("pod", container="api")
        self.cluster = m.work.cluster()
        port = m.host_port(self.api, self.api.container_port("http") or SERVE_PORT)
        self.url = f"http://{LOOPBACK}:{port}"
        self.token = admin_token(m, self.api)
        self.auth = {"Authorization": f"Bearer {self.token}"}

    def fail(self, message: str) -> str:
        return f"{message}\n{self.m.logs()}"

    def wait(self, predicate, timeout: float, what: str, interval: float = 1.0) -> Any:
        try:
            return wait_for(predicate, timeout, what, interval)
        except AssertionError as err:
            raise PodFailed(self.fail(str(err))) from None

    def helm_test(self, timeout: float = 120) -> None:
        """`helm test`: each of the chart's test pods runs to exit 0 against the started chart."""
        assert self.m.work.tests, "the chart renders no helm test pod"
        for pod in self.m.work.tests:
            self.m.start(pod)
            code = self.m.wait_exit(pod, timeout)
            assert code == 0, self.fail(f"helm test pod {pod.name} exited {code}")

    def run_job(self, spec: dict[str, Any], timeout: float = 600) -> dict[str, Any]:
        """Submit a job with the admin token, wait for its end: the service's record of it
        (`_seconds`: how long it took, `_logs`: the end of the driver's log)."""
        started = time.time()
        response = httpx.post(f"{self.url}/v1/jobs", json=spec, headers=self.auth, timeout=120)
        assert response.status_code == 201, self.fail(f"submit: {response.status_code} {response.text}")
        job_id = response.json()["id"]

        def ended() -> dict | None:
            job = httpx.get(f"{self.url}/v1/jobs/{job_id}", headers=self.auth, timeout=10).json()
            return job if job["state"] in TERMINAL else None

        job = self.wait(ended, timeout, f"job {job_id} to end", interval=2)
        logs = httpx.get(f"{self.url}/v1/jobs/{job_id}/logs", headers=self.auth, timeout=30)
        return {**job, "_seconds": time.time() - started, "_logs": logs.json().get("logs", "")[-4000:]}

    def failed(self, job: dict[str, Any]) -> str:
        return self.fail(f"job {job['id']} {job['state']}: {job.get('error')}\ndriver log:\n{job['_logs']}")


def admin_token(m: Machine, api: PodPlan) -> str:
    """The admin token as the api container has it: its file SLIMRAY_API_TOKEN (from a Secret),
    else the one the service keeps next to its store; read as the chart's notes say (`kubectl exec
    ... cat`)."""
    env = m.env(api)
    kept = PurePosixPath(env["SLIMRAY_DB_PATH"]).parent / "token"
    mounted = PurePosixPath(env.get("SLIMRAY_SECRETS_DIR", "/nonexistent")) / "SLIMRAY_API_TOKEN"
    return m.exec(api, "sh", "-c", f"cat {mounted} 2>/dev/null || cat {kept}").strip()


@contextlib.contextmanager
def chart_stack(
    docs: list[dict[str, Any]],
    workdir: Path,
    workers: int = 1,
    secrets: dict[str, dict[str, str]] | None = None,
) -> Iterator[Stack]:
    """The rendered chart's RayCluster (head, `workers` workers: this machine has 2 cores) and
    service, each ready; `secrets`: those the chart only names; every container removed on the
    way out."""
    work = Workload.of(Manifests(docs, namespace="ml", given_secrets=dict(secrets or {})))
    with machine(work, workdir) as m:
        cluster = work.cluster()
        assert len(cluster.workers) >= workers
        del cluster.workers[workers:]
        m.start_cluster(cluster)
        api = work.pod("pod", container="api")
        m.start(api)
        m.wait_ready(api, 120)
        yield Stack(m)
