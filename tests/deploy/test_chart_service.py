"""The chart as it renders with default values, started as Kubernetes and KubeRay would start it:
the service's Deployment and the RayCluster's head and one worker (tests/deploy/machine.py). No
token is given, so the chart renders no Secret: KubeRay generates the Ray token (the service reads
it from that Secret), and the service keeps its admin token in its state directory, where the
test reads it as the install notes say. The service answers its probes, takes a job with that
token and runs it on the chart's Ray cluster to `succeeded`; the run's files on the shared runs
volume are group 0 and group-writable; a Prometheus scraping with the chart's ServiceMonitor and
PodMonitor gets `slimray_*` series from the service and from the Ray head."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import httpx
import pytest

from tests.charts.k8s_checks import helm_template
from tests.deploy.chart_stack import TINY_SPEC, Stack, chart_stack
from tests.deploy.monitoring import scrape_configs
from tests.prom_helpers import prometheus, query

pytestmark = pytest.mark.timeout(900)
# the ServiceMonitor needs a metrics token: here from a Secret the operator would manage
SCRAPE_SECRET = "prometheus-scrape"
MONITORS = ("monitoring.serviceMonitor.enabled=true", "monitoring.podMonitor.enabled=true",
            f"auth.existingSecret={SCRAPE_SECRET}")  # fmt: skip


@pytest.fixture(scope="module")
def stack(image, tmp_path_factory):
    """The chart with default values; a Prometheus with the monitors the chart renders when on
    (their Secret holds the admin token, which reads /metrics too: the service has no other)."""
    monitors = [d for d in helm_template(sets=MONITORS) if d["kind"] in ("ServiceMonitor", "PodMonitor")]
    workdir = tmp_path_factory.mktemp("chart")
    docs = helm_template()
    assert not [d for d in docs if d["kind"] == "Secret"]  # no token given: the chart invents none
    with chart_stack(docs, workdir) as stack:
        stack.m.work.manifests.given_secrets[SCRAPE_SECRET] = {"metrics-token": stack.token}
        with prometheus(workdir, scrape_configs(stack.m, monitors)) as prom_url:
            stack.prom = prom_url
            yield stack


@pytest.fixture(scope="module")
def finished_job(stack):
    """The tiny job submitted to the service, ended."""
    return stack.run_job(TINY_SPEC)


def test_the_service_answers_its_probes(stack):
    for path in ("/healthz", "/readyz"):
        response = httpx.get(f"{stack.url}{path}", timeout=10)
        assert response.status_code == 200, stack.fail(f"{path}: {response.status_code} {response.text}")


def test_the_tokens_are_the_ones_kept_in_the_pod_and_generated_by_the_operator(stack):
    """Without token values: no admin token file (the service's own token, 0600 in its state
    directory, is the one it checks), the Ray token from the Secret KubeRay generates, as a file
    (issue 23 L8: no token in the service's environ)."""
    env = stack.m.env(stack.api)
    secrets_dir = PurePosixPath(env["SLIMRAY_SECRETS_DIR"])
    assert stack.m.exec(stack.api, "ls", str(secrets_dir)).split() == ["SLIMRAY_RAY_TOKEN"]
    ray_token = stack.m.exec(stack.api, "cat", str(secrets_dir / "SLIMRAY_RAY_TOKEN"))
    environ = stack.m.exec(stack.api, "cat", "/proc/1/environ")
    assert "SLIMRAY_SECRETS_DIR" in environ and ray_token not in environ and stack.token not in environ
    assert not {"SLIMRAY_API_TOKEN", "SLIMRAY_RAY_TOKEN"} & set(env) and len(stack.token) >= 16
    mode = stack.m.exec(stack.api, "stat", "-c", "%a", str(Path(env["SLIMRAY_DB_PATH"]).parent / "token"))
    assert mode.strip() == "600"
    assert httpx.get(f"{stack.url}/v1/jobs", timeout=10).status_code == 401
    assert httpx.get(f"{stack.url}/v1/jobs", headers=stack.auth, timeout=10).status_code == 200
    assert stack.cluster.token_generated and stack.cluster.token_secret == stack.cluster.name
    assert ray_token == stack.m.ray_token(stack.cluster) == stack.m.env(stack.cluster.head)["RAY_AUTH_TOKEN"]


def test_the_charts_helm_test_pod_passes(stack):
    stack.helm_test()


def test_a_job_submitted_to_the_service_succeeds_on_the_ray_pods(stack, finished_job):
    job = finished_job
    assert job["state"] == "succeeded", stack.failed(job)
    assert len(job["prune_events"]) == 1
    assert len(stack.m.nodes(stack.cluster)) == len(
        stack.cluster.pods
    )  # every node still alive, on 127.0.0.1


# run in the head pod (`kubectl exec`): wait for the keeper the service's warm job starts, then
# for its refills; the idle processes ready then
_SETTLED = """
import time, ray
from slimray.runtime.warm import find_keeper
ray.init(log_to_driver=False)
deadline = time.time() + 300
while (keeper := find_keeper()) is None and time.time() < deadline:
    time.sleep(2)
print("IDLE", ray.get(keeper.settled.remote()).idle)
"""


def test_the_next_job_starts_on_worker_processes_the_service_kept_warm(stack, finished_job):
    """Issue 27 on a cluster: the chart's Ray pods preload TensorFlow and the service keeps a
    job's processes prestarted (its warm job, then each driver's refill); a job then starts warm."""
    env = stack.m.env(stack.cluster.workers[0])
    assert env["RAY_preload_python_modules"].split(",")[:2] == ["tensorflow", "keras"]
    # a head without CPUs starts its side processes one at a time: minutes on 2 loaded cores
    settled = stack.m.exec(stack.cluster.head, "python", "-c", _SETTLED, timeout=900)
    idle = int(next(line for line in settled.splitlines() if line.startswith("IDLE "))[5:])
    assert idle > 0, stack.fail("the keeper started no process")
    job = stack.run_job(TINY_SPEC)
    assert job["state"] == "succeeded", stack.failed(job)
    assert job["metrics"]["startup"]["warm"] is True, stack.fail(f"started cold: {job['metrics']['startup']}")


def _claims(pod) -> set[str]:
    return {
        v["persistentVolumeClaim"]["claimName"]
        for v in pod.spec.get("volumes") or []
        if "persistentVolumeClaim" in v
    }


def _runs_dir(stack: Stack) -> Path:
    """The host folder of the claim the api shares with the Ray pods: the runs volume."""
    (claim,) = _claims(stack.api) & _claims(stack.cluster.head)
    return stack.m.workdir / "claims" / claim


def test_the_run_is_on_the_shared_runs_volume(stack, finished_job):
    run = _runs_dir(stack) / finished_job["id"]
    assert (run / "report.json").is_file(), stack.fail(f"no report.json in {run}: {list(run.glob('*'))}")
    assert (run / "model.keras").is_file()


def test_files_in_the_runs_volume_are_group_0_and_group_writable(stack, finished_job):
    """SLIMRAY_UMASK=0007 in the image: a run written by one pod's UID can be rewritten by another
    (an arbitrary UID in group 0, as OpenShift assigns)."""
    run = _runs_dir(stack) / finished_job["id"]
    paths = [run, *run.rglob("*")]
    assert len(paths) > 3
    wrong = [
        f"{p.relative_to(run.parent)} gid {p.stat().st_gid} mode {oct(p.stat().st_mode & 0o7777)}"
        for p in paths
        if p.stat().st_gid != 0 or not p.stat().st_mode & 0o020
    ]
    assert not wrong, "not group 0 or not group-writable:\n" + "\n".join(wrong)


def _series(stack: Stack, pod: str) -> set[str]:
    """Names of the slimray_* series Prometheus holds from a pod (a finished driver's included)."""
    response = httpx.get(
        f"{stack.prom}/api/v1/series",
        params={"match[]": f'{{__name__=~"slimray_.+", pod="{pod}"}}', "start": stack.started - 60},
        timeout=10,
    )
    return {s["__name__"] for s in response.json()["data"]}


def test_prometheus_gets_slimray_series_through_the_charts_monitors(stack, finished_job):
    head = stack.cluster.head.name
    stack.wait(lambda: _series(stack, stack.api.name), 60, "slimray_* series from the service")
    stack.wait(lambda: _series(stack, head), 60, "slimray_* series from the Ray head")
    from_service, from_head = _series(stack, stack.api.name), _series(stack, head)
    assert "slimray_jobs" in from_service, from_service
    assert "slimray_train_samples_per_second" in from_head, from_head
    # the PodMonitor's relabelling: Ray's ray_slimray_* renamed, the training job in `job`
    relabelled = query(stack.prom, f'max_over_time(slimray_train_samples_per_second{{pod="{head}"}}[15m])')
    jobs = httpx.get(f"{stack.url}/v1/jobs", headers=stack.auth, timeout=10).json()["jobs"]
    labelled = {r["metric"]["job"] for r in relabelled}  # this job's, and any later one's
    assert finished_job["id"] in labelled <= {job["id"] for job in jobs}, relabelled
    assert not query(stack.prom, 'count_over_time({__name__=~"ray_slimray_.+"}[15m])')
