"""k8s/: the RayCluster, the RayJob (with its spec ConfigMap) and the PodMonitor validate against
their CRDs and Kubernetes, their pods are restricted, and the job they run is a valid spec."""

from __future__ import annotations

import shlex

import pytest
import yaml

from slimray.spec import parse_spec
from tests.charts.k8s_checks import (
    ROOT,
    crd_problems,
    is_custom,
    kubernetes_validate,
    pod_specs,
    restricted_violations,
)

MANIFESTS = sorted((ROOT / "k8s").glob("*.yaml"))
DOCS = [d for path in MANIFESTS for d in yaml.safe_load_all(path.read_text()) if d]


def test_the_manifests_are_there():
    assert {p.name for p in MANIFESTS} >= {"raycluster.yaml", "rayjob.yaml", "podmonitor.yaml"}


@pytest.mark.parametrize("doc", [d for d in DOCS if is_custom(d)], ids=lambda d: d["kind"])
def test_custom_resources_match_their_crds(doc):
    assert crd_problems(doc) == []


def test_built_in_kinds_pass_kubernetes_validate_strict(tmp_path):
    kubernetes_validate([d for d in DOCS if not is_custom(d)], tmp_path)


def test_every_pod_is_restricted():
    pods = [p for d in DOCS for p in pod_specs(d)]
    assert len(pods) >= 5  # cluster head + worker, job head + worker + submitter
    assert [v for where, pod in pods for v in restricted_violations(where, pod)] == []


def _named(kind: str, name: str) -> dict:
    return next(d for d in DOCS if d["kind"] == kind and d["metadata"]["name"] == name)


def _job_spec(job: dict):
    """The RayJob's entrypoint runs slimray on a spec from its ConfigMap: that spec, parsed."""
    spec = job["spec"]
    assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] > 0
    command = shlex.split(spec["entrypoint"])
    assert command[:2] == ["slimray", "run"]
    head = spec["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    mount = next(m for m in head["containers"][0]["volumeMounts"] if m["name"] == "spec")
    volume = next(v for v in head["volumes"] if v["name"] == "spec")
    config_map = _named("ConfigMap", volume["configMap"]["name"])
    filename = command[2].removeprefix(mount["mountPath"] + "/")
    return parse_spec(yaml.safe_load(config_map["data"][filename]), job["metadata"]["name"])


def test_the_rayjob_runs_slimray_on_the_spec_from_its_configmap_and_cleans_up():
    job = _named("RayJob", "slimray-mnist")
    head = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    runs = next(m["mountPath"] for m in head["containers"][0]["volumeMounts"] if m["name"] == "runs")
    assert _job_spec(job).output.dir.startswith(runs + "/")


def test_the_object_store_rayjob_writes_to_the_bucket_with_keys_from_a_secret():
    job = _named("RayJob", "slimray-mnist-s3")
    assert _job_spec(job).output.dir.startswith("s3://")
    ray_pods = [pod for where, pod in pod_specs(job) if "submitter" not in where]
    assert len(ray_pods) == 2  # head and workers
    for pod in ray_pods:  # every Ray container reads the store with the Secret's keys; no volume
        container = pod["containers"][0]
        assert {"secretRef": {"name": "slimray-s3"}} in container.get("envFrom", [])
        assert not any("persistentVolumeClaim" in v for v in pod.get("volumes", []))


def test_the_podmonitor_renames_ray_exported_driver_metrics_like_the_chart():
    from tests.charts.k8s_checks import helm_template

    chart = next(
        d for d in helm_template(sets=("monitoring.podMonitor.enabled=true",)) if d["kind"] == "PodMonitor"
    )
    ours = next(d for d in DOCS if d["kind"] == "PodMonitor")
    relabel = lambda d: d["spec"]["podMetricsEndpoints"][0]["metricRelabelings"]  # noqa: E731
    assert relabel(chart) == relabel(ours)
