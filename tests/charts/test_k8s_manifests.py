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


def test_the_rayjob_runs_slimray_on_the_spec_from_its_configmap_and_cleans_up():
    job = next(d for d in DOCS if d["kind"] == "RayJob")
    spec = job["spec"]
    assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] > 0
    command = shlex.split(spec["entrypoint"])
    assert command[:2] == ["slimray", "run"]
    config_map = next(d for d in DOCS if d["kind"] == "ConfigMap")
    head = spec["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    mount = next(m for m in head["containers"][0]["volumeMounts"] if m["name"] == "spec")
    volume = next(v for v in head["volumes"] if v["name"] == "spec")
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    filename = command[2].removeprefix(mount["mountPath"] + "/")
    job_spec = parse_spec(yaml.safe_load(config_map["data"][filename]), "k8s/rayjob.yaml")
    runs = next(m["mountPath"] for m in head["containers"][0]["volumeMounts"] if m["name"] == "runs")
    assert job_spec.output.dir.startswith(runs + "/")


def test_the_podmonitor_renames_ray_exported_driver_metrics_like_the_chart():
    from tests.charts.k8s_checks import helm_template

    chart = next(
        d for d in helm_template(sets=("monitoring.podMonitor.enabled=true",)) if d["kind"] == "PodMonitor"
    )
    ours = next(d for d in DOCS if d["kind"] == "PodMonitor")
    relabel = lambda d: d["spec"]["podMetricsEndpoints"][0]["metricRelabelings"]  # noqa: E731
    assert relabel(chart) == relabel(ours)
