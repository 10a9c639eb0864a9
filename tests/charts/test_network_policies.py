"""Issue 23 M4: NetworkPolicies select the Ray pods, in the chart (every values set the chart tests
use) and in k8s/. The pods are planned from the rendered RayCluster/RayJob as KubeRay makes them
(tests/deploy/kuberay.py, its labels included); only the cluster's own pods reach every port, only
the API pod (a RayJob's submitter and the operator, for k8s/) the job API, only Prometheus the
metrics port."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from tests.charts.k8s_checks import CHART, ROOT, helm_template
from tests.charts.netpol import Source, allowed, selecting
from tests.charts.test_chart import VALUES
from tests.deploy.kuberay import (
    AGENT_PORT,
    CLIENT_PORT,
    DASHBOARD_PORT,
    GCS_PORT,
    METRICS_PORT,
    Manifests,
    PodPlan,
    Workload,
    ray_cluster,
    ray_job,
)

RAY_PORTS = (GCS_PORT, DASHBOARD_PORT, METRICS_PORT, CLIENT_PORT, AGENT_PORT, 20002)  # 20002: a worker
DEFAULTS = yaml.safe_load((CHART / "values.yaml").read_text())["networkPolicy"]
PROMETHEUS = Source(DEFAULTS["prometheusPodSelector"], "monitoring", DEFAULTS["monitoringNamespaceSelector"])
STRANGER = Source({"app": "notebook"})


def every_group_pods(name: str, spec: dict, namespace: str = "ml") -> list[PodPlan]:
    """The head and one pod of every worker group (autoscaled ones included), as KubeRay makes them."""
    spec = copy.deepcopy(spec)
    for group in spec.get("workerGroupSpecs") or []:
        group["replicas"] = 1
    return ray_cluster(name, spec, namespace).pods


def _policies(docs: list[dict]) -> list[dict]:
    return [d for d in docs if d["kind"] == "NetworkPolicy"]


def _chart(values: tuple[Path, ...], sets: tuple[str, ...] = ()) -> tuple[list[dict], list[PodPlan], PodPlan]:
    """(policies, Ray pods, API pod) of one rendering."""
    docs = helm_template(*values, sets=sets)
    cluster = next(d for d in docs if d["kind"] == "RayCluster")
    api = Workload.of(Manifests(docs)).pod("pod", container="api")
    return _policies(docs), every_group_pods(cluster["metadata"]["name"], cluster["spec"]), api


def _source(pod: PodPlan, **changes: str) -> Source:
    return Source({**pod.labels, **changes})


CHART_RAY = [name for name in VALUES if "existing-cluster" not in name]


@pytest.mark.parametrize("values", CHART_RAY)
def test_the_charts_ray_pods_are_reached_only_by_their_cluster_the_api_and_prometheus(values):
    policies, pods, api = _chart(VALUES[values])
    head, *workers = pods
    assert workers and all(selecting(policies, pod) for pod in pods), "a Ray pod no policy selects"
    assert not any(p["metadata"]["name"].endswith("-ray") for p in selecting(policies, api))
    for target in pods:
        for peer in pods:  # GCS, object managers, raylets, workers: the cluster's own pods, any port
            assert all(allowed(policies, _source(peer), target, port) for port in RAY_PORTS), target.name
        prometheus_ports = [p for p in RAY_PORTS if allowed(policies, PROMETHEUS, target, p)]
        assert prometheus_ports == [METRICS_PORT], target.name
        assert not any(allowed(policies, STRANGER, target, p) for p in RAY_PORTS), target.name
        others = [
            _source(target, **{"ray.io/cluster": "other-ray"}),  # another cluster of the namespace
            _source(target, **{"app.kubernetes.io/instance": "other"}),  # another release's
            _source(api, **{"app.kubernetes.io/instance": "other"}),  # another release's API
            Source(PROMETHEUS.labels),  # Prometheus' labels, outside its namespace
            Source({"app.kubernetes.io/name": "grafana"}, "monitoring", PROMETHEUS.namespace_labels),
        ]
        for other in others:
            assert not any(allowed(policies, other, target, p) for p in RAY_PORTS), (target.name, other)
    api_ports = [p for p in RAY_PORTS if allowed(policies, _source(api), head, p)]
    assert api_ports == [DASHBOARD_PORT]


def test_the_prometheus_selector_is_a_value():
    custom = (
        "networkPolicy.prometheusPodSelector.app=prom",
        "networkPolicy.prometheusPodSelector.app\\.kubernetes\\.io/name=null",
    )
    policies, pods, _ = _chart(VALUES["default"], sets=custom)
    prom = Source({"app": "prom"}, "monitoring", PROMETHEUS.namespace_labels)
    assert all(allowed(policies, prom, pod, METRICS_PORT) for pod in pods)
    assert not any(allowed(policies, PROMETHEUS, pod, METRICS_PORT) for pod in pods)


def test_without_its_own_ray_cluster_the_chart_renders_no_ray_policy():
    docs = helm_template(*VALUES["existing-cluster"])
    assert not any(d["kind"] == "RayCluster" for d in docs)
    assert [p["metadata"]["name"] for p in _policies(docs)] == ["r-slimray"]  # the API's only


# ------------------------------------------------------------------ k8s/

K8S = [d for p in sorted((ROOT / "k8s").glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]
K8S_POLICIES = _policies(K8S)
OPERATOR = Source({"app.kubernetes.io/name": "kuberay-operator"}, "kuberay-system")


def _k8s_clusters() -> list[tuple[str, list[PodPlan], PodPlan | None]]:
    """(where, Ray pods, submitter) of every RayCluster and RayJob in k8s/."""
    out = []
    for doc in K8S:
        if doc["kind"] == "RayCluster":
            out.append(
                (doc["metadata"]["name"], every_group_pods(doc["metadata"]["name"], doc["spec"]), None)
            )
        elif doc["kind"] == "RayJob":
            job = ray_job(doc, "ml")
            pods = every_group_pods(job.cluster.name, doc["spec"]["rayClusterSpec"])
            out.append((doc["metadata"]["name"], pods, job.submitter))
    return out


@pytest.mark.parametrize("where, pods, submitter", [pytest.param(*c, id=c[0]) for c in _k8s_clusters()])
def test_k8s_ray_pods_are_reached_only_by_ray_pods_the_submitter_the_operator_and_prometheus(
    where, pods, submitter
):
    head = pods[0]
    assert all(selecting(K8S_POLICIES, pod) for pod in pods), where
    for target in pods:
        for peer in pods:
            assert all(allowed(K8S_POLICIES, _source(peer), target, port) for port in RAY_PORTS), target.name
        assert [p for p in RAY_PORTS if allowed(K8S_POLICIES, PROMETHEUS, target, p)] == [METRICS_PORT]
        assert not any(allowed(K8S_POLICIES, STRANGER, target, p) for p in RAY_PORTS), target.name
    assert [p for p in RAY_PORTS if allowed(K8S_POLICIES, OPERATOR, head, p)] == [DASHBOARD_PORT]
    if submitter is not None:
        assert [p for p in RAY_PORTS if allowed(K8S_POLICIES, _source(submitter), head, p)] == [
            DASHBOARD_PORT
        ]
