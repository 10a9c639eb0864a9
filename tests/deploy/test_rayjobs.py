"""k8s/rayjob.yaml and k8s/rayjob-s3.yaml as KubeRay runs them (K8sJobMode): the generated
RayCluster's head and worker, then the submitter pod from `submitterPodTemplate` with the script
KubeRay builds (wait for the GCS, `ray job submit --no-wait`, `ray job logs --follow`). The job's
result is the dashboard's job status; the run lands where the job spec in the RayJob's ConfigMap
says: the shared runs volume, or the S3 bucket (moto) whose endpoint and keys the `slimray-s3`
Secret holds. While the first runs, a Prometheus scraping with k8s/podmonitor.yaml gets the
driver's `slimray_*` series from the head."""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from tests.charts.k8s_checks import ROOT
from tests.deploy.kuberay import Manifests, RayJobPlan, Workload
from tests.deploy.machine import Machine, machine
from tests.deploy.monitoring import scrape_configs
from tests.prom_helpers import prometheus
from tests.s3_helpers import CREDENTIALS, moto_server

pytestmark = pytest.mark.timeout(900)
K8S = ROOT / "k8s"
JOB_TIMEOUT = 600


def _job_spec(m: Machine, job: RayJobPlan) -> dict:
    """The spec the entrypoint (`slimray run <file> ...`) reads, from the head's ConfigMap volume."""
    command = shlex.split(m.work.manifests.named("RayJob", job.name)["spec"]["entrypoint"])
    assert command[:2] == ["slimray", "run"], command
    return yaml.safe_load(m.file_text(job.cluster.head, command[2]))


def _run(m: Machine, job: RayJobPlan) -> tuple[int, dict, float]:
    """The submitter to its end: (exit code, the dashboard's job record, seconds)."""
    started = time.time()
    m.start(job.submitter)
    code = m.wait_exit(job.submitter, JOB_TIMEOUT)
    return code, m.job_status(job.cluster, job.submission_id), time.time() - started


def _succeeded(m: Machine, code: int, record: dict) -> None:
    assert code == 0 and record["status"] == "SUCCEEDED", (
        f"submitter exit {code}, job {record.get('status')}: {record.get('message')}\n{m.logs()}"
    )


def test_the_rayjob_runs_its_spec_to_success_on_the_shared_runs_volume(image, tmp_path):
    manifests = Manifests.load(K8S / "rayjob.yaml", namespace="ml")
    monitor = yaml.safe_load((K8S / "podmonitor.yaml").read_text())
    work = Workload.of(manifests)
    job = work.job("slimray-mnist")
    with machine(work, tmp_path) as m:
        spec = _job_spec(m, job)
        m.start_cluster(job.cluster)
        with prometheus(tmp_path, scrape_configs(m, [monitor])) as prom:
            code, record, seconds = _run(m, job)
            _succeeded(m, code, record)
            series = httpx.get(
                f"{prom}/api/v1/series",
                params={
                    "match[]": f'{{__name__=~"slimray_.+", pod="{job.cluster.head.name}"}}',
                    "start": time.time() - 3600,
                },
                timeout=10,
            ).json()["data"]
        run = m.host_path(job.cluster.head, spec["output"]["dir"])
        report = json.loads((run / "report.json").read_text())
        assert report["state"] == "succeeded", report
        assert (run / "model.keras").is_file()
    print(f"k8s/rayjob.yaml: the submitter ran {seconds:.0f} s")
    names = {s["__name__"] for s in series}
    assert "slimray_train_samples_per_second" in names, names
    assert {s["job"] for s in series} == {spec["name"]}  # the PodMonitor's relabelling: the job's name


def test_the_object_store_rayjob_writes_its_run_to_the_bucket(image, tmp_path):
    manifests = Manifests.load(K8S / "rayjob-s3.yaml", namespace="ml")
    work = Workload.of(manifests)
    job = work.job("slimray-mnist-s3")
    with moto_server(tmp_path) as s3, machine(work, tmp_path) as m:
        # what `kubectl create secret generic slimray-s3 ...` in the manifest's comment puts there
        manifests.given_secrets["slimray-s3"] = {
            "AWS_ACCESS_KEY_ID": CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "AWS_SECRET_ACCESS_KEY": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            "AWS_ENDPOINT_URL": s3.endpoint,
        }
        out = urlsplit(_job_spec(m, job)["output"]["dir"])
        assert out.scheme == "s3", out
        s3.client().create_bucket(Bucket=out.netloc)
        m.start_cluster(job.cluster)
        code, record, seconds = _run(m, job)
        _succeeded(m, code, record)
        prefix = out.path.strip("/") + "/"
        keys = [k.removeprefix(prefix) for k in s3.keys(out.netloc, prefix)]
        report = json.loads(
            s3.client().get_object(Bucket=out.netloc, Key=prefix + "report.json")["Body"].read()
        )
    print(f"k8s/rayjob-s3.yaml: the submitter ran {seconds:.0f} s")
    assert report["state"] == "succeeded", report
    assert "model.keras" in keys and any(k.startswith("saved_model/") for k in keys), keys
    assert not any(Path(tmp_path, "claims").glob("*")), "the object-store job mounts no claim"
