"""The chart as it renders with default values, started as Kubernetes and KubeRay would start it:
the service's Deployment and the RayCluster's head and one worker (tests/deploy/machine.py). The
service answers its probes, takes a job with the token from the rendered Secret and runs it on
the chart's Ray cluster to `succeeded`; the run's files on the shared runs volume are group 0
and group-writable; a Prometheus scraping with the chart's ServiceMonitor and PodMonitor gets
`slimray_*` series from the service and from the Ray head."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.charts.k8s_checks import helm_template
from tests.deploy.kuberay import SERVE_PORT, Manifests, Workload
from tests.deploy.machine import LOOPBACK, Machine, PodFailed, machine
from tests.deploy.monitoring import scrape_configs
from tests.prom_helpers import prometheus, query

pytestmark = pytest.mark.timeout(900)
MONITORS = ("monitoring.serviceMonitor.enabled=true", "monitoring.podMonitor.enabled=true")
# the seed CNN on MNIST, one Ray Train worker, one prune event: about a minute of work
TINY_SPEC = {
    "name": "deploy-tiny",
    "model": {"source": "seed_cnn"},
    "data": {"source": "mnist"},
    "train": {"steps": 60, "batch_size": 64, "report_every": 5, "checkpoint_every": 30},
    "prune": {"criterion": "l1", "sparsity": 0.25, "schedule": {"kind": "one_shot", "step": 30}},
    "scaling": {"num_workers": 1},
}


class Stack:
    """The started chart: the Machine, its api pod and Ray cluster, and a Prometheus on them."""

    def __init__(self, m: Machine, prom_url: str):
        self.m, self.prom = m, prom_url
        self.started = time.time()
        self.api = m.work.pod("pod", container="api")
        self.cluster = m.work.cluster()
        port = m.host_port(self.api, self.api.container_port("http") or SERVE_PORT)
        self.url = f"http://{LOOPBACK}:{port}"
        token = _api_token(m)
        self.auth = {"Authorization": f"Bearer {token}"}

    def fail(self, message: str) -> str:
        return f"{message}\n{self.m.logs()}"


def _api_token(m: Machine) -> str:
    """The admin token as the api container gets it: its env's SLIMRAY_API_TOKEN (the Secret)."""
    return m.env(m.work.pod("pod", container="api"))["SLIMRAY_API_TOKEN"]


@pytest.fixture(scope="module")
def stack(image, tmp_path_factory):
    docs = helm_template()
    monitors = [d for d in helm_template(sets=MONITORS) if d["kind"] in ("ServiceMonitor", "PodMonitor")]
    work = Workload.of(Manifests(docs, namespace="ml"))
    workdir = tmp_path_factory.mktemp("chart")
    with machine(work, workdir) as m:
        cluster = work.cluster()
        assert len(cluster.workers) >= 1
        del cluster.workers[1:]  # one worker: enough for a job, and this machine has 2 cores
        m.start_cluster(cluster)
        api = work.pod("pod", container="api")
        m.start(api)
        m.wait_ready(api, 120)
        with prometheus(workdir, scrape_configs(m, monitors)) as prom_url:
            yield Stack(m, prom_url)


def _wait(predicate, timeout: float, what: str, stack: Stack, interval: float = 1.0) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise PodFailed(stack.fail(f"timed out after {timeout:.0f} s waiting for {what}"))


@pytest.fixture(scope="module")
def finished_job(stack):
    """The tiny job submitted to the service (the admin token from the rendered Secret), ended."""
    started = time.time()
    response = httpx.post(f"{stack.url}/v1/jobs", json=TINY_SPEC, headers=stack.auth, timeout=120)
    assert response.status_code == 201, stack.fail(f"submit: {response.status_code} {response.text}")
    job_id = response.json()["id"]

    def ended() -> dict | None:
        job = httpx.get(f"{stack.url}/v1/jobs/{job_id}", headers=stack.auth, timeout=10).json()
        return job if job["state"] in ("succeeded", "failed", "cancelled") else None

    job = _wait(ended, 600, f"job {job_id} to end", stack, interval=2)
    job["_seconds"] = time.time() - started
    return job


def test_the_service_answers_its_probes(stack):
    for path in ("/healthz", "/readyz"):
        response = httpx.get(f"{stack.url}{path}", timeout=10)
        assert response.status_code == 200, stack.fail(f"{path}: {response.status_code} {response.text}")


def test_a_job_submitted_to_the_service_succeeds_on_the_ray_pods(stack, finished_job):
    job = finished_job
    logs = httpx.get(f"{stack.url}/v1/jobs/{job['id']}/logs", headers=stack.auth, timeout=30).json()
    assert job["state"] == "succeeded", stack.fail(f"job {job['id']} {job['state']}: {job.get('error')}\n"
                                                   f"driver log:\n{logs.get('logs', '')[-4000:]}")  # fmt: skip
    assert len(job["prune_events"]) == 1
    # the workers ran on the worker pod: the head has num-cpus 0
    nodes = {n["node_id"]: n for n in stack.m.nodes(stack.cluster)}
    assert len(nodes) == len(stack.cluster.pods)


def _claims(pod) -> set[str]:
    return {v["persistentVolumeClaim"]["claimName"] for v in pod.spec.get("volumes") or []
            if "persistentVolumeClaim" in v}  # fmt: skip


def _runs_dir(stack: Stack) -> Path:
    """The host folder of the claim the api shares with the Ray pods: the runs volume."""
    (claim,) = _claims(stack.api) & _claims(stack.cluster.head)
    return stack.m.workdir / "claims" / claim


def test_the_run_is_on_the_shared_runs_volume(stack, finished_job):
    run = _runs_dir(stack) / finished_job["id"]
    assert (run / "report.json").is_file(), stack.fail(f"no report.json in {run}: {list(run.glob('*'))}")
    assert (run / "model.keras").is_file()


def test_files_in_the_runs_volume_are_group_0_and_group_writable(stack, finished_job):
    """SLIMRAY_UMASK=0002 in the image: a run written by one pod's UID can be rewritten by another
    (an arbitrary UID in group 0, as OpenShift assigns)."""
    run = _runs_dir(stack) / finished_job["id"]
    paths = [run, *run.rglob("*")]
    assert len(paths) > 3
    wrong = [f"{p.relative_to(run.parent)} gid {p.stat().st_gid} mode {oct(p.stat().st_mode & 0o7777)}"
             for p in paths if p.stat().st_gid != 0 or not p.stat().st_mode & 0o020]  # fmt: skip
    assert not wrong, "not group 0 or not group-writable:\n" + "\n".join(wrong)


def _series(stack: Stack, pod: str) -> set[str]:
    """Names of the slimray_* series Prometheus holds from a pod (a finished driver's included)."""
    response = httpx.get(f"{stack.prom}/api/v1/series", params={"match[]": f'{{__name__=~"slimray_.+", pod="{pod}"}}',
                         "start": stack.started - 60}, timeout=10)  # fmt: skip
    return {s["__name__"] for s in response.json()["data"]}


def test_prometheus_gets_slimray_series_through_the_charts_monitors(stack, finished_job):
    head = stack.cluster.head.name
    _wait(lambda: _series(stack, stack.api.name), 60, "slimray_* series from the service", stack)
    _wait(lambda: _series(stack, head), 60, "slimray_* series from the Ray head", stack)
    from_service, from_head = _series(stack, stack.api.name), _series(stack, head)
    assert "slimray_jobs" in from_service, from_service
    assert "slimray_train_samples_per_second" in from_head, from_head
    # the PodMonitor's relabelling: Ray's ray_slimray_* renamed, the training job in `job`
    relabelled = query(stack.prom, f'max_over_time(slimray_train_samples_per_second{{pod="{head}"}}[15m])')
    assert {r["metric"]["job"] for r in relabelled} == {finished_job["id"]}, relabelled
    assert not query(stack.prom, 'count_over_time({__name__=~"ray_slimray_.+"}[15m])')
