"""prometheus-operator's ServiceMonitors and PodMonitors as plain Prometheus scrape configs for the
pods a Machine runs: each endpoint becomes a job with one static target per matching pod (its
free port on 127.0.0.1), the endpoint's path, scheme, honorLabels and bearer credentials (from
the rendered Secret), its metricRelabelings and relabelings. The target carries the labels the
operator's own relabelling gives (namespace, pod, container, endpoint, service, job) and the
`__meta_kubernetes_*` ones a manifest's `relabelings` may read. Only the scrape interval is
shortened (1 s) so a test does not wait for it."""

from __future__ import annotations

import re
from typing import Any

from tests.deploy.kuberay import PodPlan, selector_matches
from tests.deploy.machine import LOOPBACK, Machine

_RELABEL_KEYS = {"sourceLabels": "source_labels", "targetLabel": "target_label"}


def relabel_configs(rules: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Operator relabelings (camelCase) as Prometheus relabel configs (snake_case)."""
    return [{_RELABEL_KEYS.get(k, k): v for k, v in rule.items()} for rule in rules or []]


def _meta_labels(pod: PodPlan, namespace: str, container: str) -> dict[str, str]:
    labels = {
        "__meta_kubernetes_namespace": namespace,
        "__meta_kubernetes_pod_name": pod.name,
        "__meta_kubernetes_pod_container_name": container,
    }
    for key, value in pod.labels.items():
        labels["__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", key)] = value
    return labels


def _job(m: Machine, name: str, endpoint: dict[str, Any], targets: list[dict[str, Any]]) -> dict[str, Any]:
    job: dict[str, Any] = {
        "job_name": name,
        "scrape_interval": "1s",
        "metrics_path": endpoint.get("path", "/metrics"),
        "scheme": endpoint.get("scheme", "http"),
        "honor_labels": bool(endpoint.get("honorLabels", False)),
        "static_configs": targets,
        "relabel_configs": relabel_configs(endpoint.get("relabelings")),
        "metric_relabel_configs": relabel_configs(endpoint.get("metricRelabelings")),
    }
    auth = endpoint.get("authorization") or {}
    ref = (auth.get("credentials") or endpoint.get("bearerTokenSecret")) or None
    if ref:
        token = m.work.manifests.secret(ref["name"])[ref["key"]]
        job["authorization"] = {"type": auth.get("type", "Bearer"), "credentials": token}
    if endpoint.get("params"):
        job["params"] = endpoint["params"]
    return job


def service_monitor_jobs(m: Machine, monitor: dict[str, Any]) -> list[dict[str, Any]]:
    """One job per endpoint; a target per Service (selected by its labels) and named port."""
    ns, name = m.ns, monitor["metadata"]["name"]
    services = [
        d
        for d in m.work.manifests.of_kind("Service")
        if selector_matches(monitor["spec"]["selector"], d["metadata"].get("labels") or {})
    ]
    jobs = []
    for i, endpoint in enumerate(monitor["spec"]["endpoints"]):
        targets = []
        for doc in services:
            plan = next(s for s in m.work.services if s.name == doc["metadata"]["name"])
            port = next(p for p in doc["spec"]["ports"] if endpoint.get("port") in (p.get("name"), p["port"]))
            container_port = plan.target(port["port"])
            labels = {
                **_meta_labels(plan.pod, ns, plan.pod.container["name"]),
                "namespace": ns,
                "service": plan.name,
                "pod": plan.pod.name,
                "container": plan.pod.container["name"],
                "endpoint": str(endpoint.get("port")),
                "job": plan.name,
            }
            targets.append(
                {"targets": [f"{LOOPBACK}:{m.host_port(plan.pod, container_port)}"], "labels": labels}
            )
        jobs.append(_job(m, f"serviceMonitor/{ns}/{name}/{i}", endpoint, targets))
    return jobs


def pod_monitor_jobs(m: Machine, monitor: dict[str, Any]) -> list[dict[str, Any]]:
    """One job per endpoint; a target per started pod whose labels match and that has the port."""
    ns, name = m.ns, monitor["metadata"]["name"]
    pods = [s.pod for s in m.started.values() if selector_matches(monitor["spec"]["selector"], s.pod.labels)]
    jobs = []
    for i, endpoint in enumerate(monitor["spec"]["podMetricsEndpoints"]):
        targets = []
        for pod in pods:
            container_port = pod.container_port(endpoint["port"])
            if container_port is None:
                continue
            labels = {
                **_meta_labels(pod, ns, pod.container["name"]),
                "namespace": ns,
                "pod": pod.name,
                "container": pod.container["name"],
                "endpoint": endpoint["port"],
                "job": f"{ns}/{name}",
            }
            targets.append({"targets": [f"{LOOPBACK}:{m.host_port(pod, container_port)}"], "labels": labels})
        jobs.append(_job(m, f"podMonitor/{ns}/{name}/{i}", endpoint, targets))
    return jobs


def scrape_configs(m: Machine, monitors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Scrape configs for every ServiceMonitor and PodMonitor among `monitors`."""
    jobs = []
    for monitor in monitors:
        if monitor["kind"] == "ServiceMonitor":
            jobs += service_monitor_jobs(m, monitor)
        elif monitor["kind"] == "PodMonitor":
            jobs += pod_monitor_jobs(m, monitor)
    return jobs
