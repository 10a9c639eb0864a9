"""What Kubernetes and the KubeRay v1.7 operator make of rendered manifests: the pods (with the
command, env and probes the operator gives Ray containers and the RayJob submitter) and the
Services in front of them. Plain data, no Docker: `tests/deploy/machine.py` runs the result.

Read from KubeRay v1.7.0 (`ray-operator/controllers/ray/`; /work/shared/kuberay-pods.md):
- Ray pods (`common/pod.go`): container 0 is the Ray container; its command becomes
  `/bin/bash -c -- "ulimit -n ${RAY_START_ULIMIT_OPEN_FILES:-65536}; ray start ..."` (after the
  container's own command/args, joined with `&&`). `setMissingRayStartParams` adds `--block`,
  `--metrics-export-port=8080`, `--dashboard-agent-listen-port=52365`, head `--dashboard-host=0.0.0.0`,
  worker `--address=<head service FQDN>:<port>`; `generateRayStartCommand` adds `--num-cpus` (CPU
  limit, else request, rounded up), `--memory` (limit, bytes), `--num-gpus` (a `*gpu` limit);
  `convertParamMap` sorts the flags, `"true"` is a bare flag and `"false"` dropped (but for
  `log-color`, `include-dashboard`, `include-log-monitor`). `setContainerEnvVars` and
  `SetContainerTokenAuthEnvVars` add the env below; a `/dev/shm` emptyDir (medium Memory, sized
  from the memory limit); Ray >= 2.53: readiness `httpGet /api/healthz` on the agent port.
  `labelPod`: `ray.io/is-ray-node`, `ray.io/cluster`, `ray.io/node-type`, `ray.io/group`,
  `ray.io/identifier`, `app.kubernetes.io/name: kuberay`, `app.kubernetes.io/created-by`; the
  template's labels override them, except cluster, node type and group.
- Token auth (`authOptions.mode: token`): `RAY_AUTH_MODE=token` and `RAY_AUTH_TOKEN` from the Secret
  `authOptions.secretName`, else one the operator generates named after the RayCluster (key
  `auth_token`).
- RayJob (`common/job.go`, `rayjob_controller.go`): the cluster `<rayjob>-<5 chars>`, the submission
  id `<rayjob>-<5 chars>`, a Service `<rayjob>-head-svc` besides the cluster's own; the dashboard URL
  `<cluster>-head-svc.<ns>.svc.cluster.local:8265`; the submitter is `submitterPodTemplate` with
  command `/bin/bash -ce --` and the script `BuildJobSubmitCommand` joins (when it has no command
  of its own), plus `PYTHONUNBUFFERED`, `RAY_DASHBOARD_ADDRESS`, `RAY_JOB_SUBMISSION_ID` and the auth env.
- Left out: the autoscaler sidecar (there is no API server to scale through), init containers,
  custom accelerators' `--resources` (TPU, Neuron), GCS fault tolerance, TLS and Kubernetes-token
  auth (no manifest here uses them).
"""

from __future__ import annotations

import base64
import copy
import json
import math
import random
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

# KubeRay's default ports (utils/constant.go)
GCS_PORT, DASHBOARD_PORT, CLIENT_PORT, METRICS_PORT, AGENT_PORT, SERVE_PORT = (
    6379,
    8265,
    10001,
    8080,
    52365,
    8000,
)
CLUSTER_DOMAIN = "cluster.local"
ULIMIT = "ulimit -n ${RAY_START_ULIMIT_OPEN_FILES:-65536}"
BOOL_VALUED_FLAGS = ("log-color", "include-dashboard", "include-log-monitor")
GPU_SUFFIX = "gpu"  # utils.IsGPUResourceKey: any limit whose name ends in "gpu"
HEALTH_PATH = "/api/healthz"  # RayNodeHealthPath, Ray >= 2.53
GCS_HEALTH_PATH = "api/gcs_healthz"
PYTHON_HEALTH = (
    "python -c \"import urllib.request; r=urllib.request.urlopen('{url}', timeout=10); "
    "exit(0 if b'success' in r.read() else 1)\""
)
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery rand.String


def random_suffix(length: int = 5) -> str:
    """A suffix like the ones Kubernetes and KubeRay generate for names."""
    return "".join(random.choice(_NAME_ALPHABET) for _ in range(length))


_QUANTITY_SUFFIXES = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
}


def quantity(value: str | int | float) -> Decimal:
    """A Kubernetes resource quantity ("500m", "8Gi", 2) as a number."""
    text = str(value).strip()
    for suffix in sorted(_QUANTITY_SUFFIXES, key=len, reverse=True):
        if text.endswith(suffix) and text[: -len(suffix)].replace(".", "", 1).isdigit():
            return Decimal(text[: -len(suffix)]) * Decimal(_QUANTITY_SUFFIXES[suffix])
    return Decimal(text)


def quantity_value(value: str | int | float) -> int:
    """resource.Quantity.Value(): rounded up to an integer."""
    return math.ceil(quantity(value))


@dataclass
class Manifests:
    """Rendered documents, the namespace they are applied in, and the Secrets the test supplies
    (those the manifests only name, e.g. `kubectl create secret` in their instructions)."""

    docs: list[dict[str, Any]]
    namespace: str = "ml"
    given_secrets: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def load(cls, *paths: Path, namespace: str = "ml") -> Manifests:
        docs = [d for p in paths for d in yaml.safe_load_all(p.read_text()) if d]
        return cls(docs, namespace)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def named(self, kind: str, name: str) -> dict[str, Any]:
        found = [d for d in self.of_kind(kind) if d["metadata"]["name"] == name]
        assert found, f"no {kind} {name!r} in the manifests"
        return found[0]

    def secret(self, name: str) -> dict[str, str]:
        """A rendered Secret's data (decoded), else the test's own; KeyError if neither."""
        for doc in self.of_kind("Secret"):
            if doc["metadata"]["name"] == name:
                data = {k: base64.b64decode(v).decode() for k, v in (doc.get("data") or {}).items()}
                return {**data, **(doc.get("stringData") or {})}
        if name in self.given_secrets:
            return self.given_secrets[name]
        raise KeyError(f"Secret {name!r}: neither rendered nor given by the test")

    def config_map(self, name: str) -> dict[str, str]:
        return dict(self.named("ConfigMap", name).get("data") or {})


def selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A label selector (matchLabels, matchExpressions) against a pod's labels."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


@dataclass
class RayStart:
    """A Ray container's `ray start`: its complete rayStartParams, as KubeRay fills them in."""

    head: bool
    params: dict[str, str]
    prefix: str = ""  # the container's own command and args, run first

    def line(self) -> str:
        """`ray start [--head]` and the flags, exactly as convertParamMap writes them."""
        flags = ""
        for option in sorted(self.params):
            value = self.params[option]
            if value.lower() in ("true", "false") and option not in BOOL_VALUED_FLAGS:
                flags += f" --{option} " if value.lower() == "true" else ""
            else:
                flags += f" --{option}={value} "
        return ("ray start --head " if self.head else "ray start ") + flags

    def script(self) -> str:
        generated = f"{ULIMIT}; {self.line()}"
        return f"{self.prefix} && {generated}" if self.prefix else generated


@dataclass
class PodPlan:
    """One pod as the API server would hold it once the operator made it."""

    name: str
    role: str  # "pod" (Deployment, Job, Pod, ...), "head", "worker" or "submitter"
    labels: dict[str, str]
    spec: dict[str, Any]  # the pod spec; container 0 is the one run
    cluster: str | None = None  # the RayCluster of a Ray pod or of a submitter
    ray: RayStart | None = None
    script: str | None = None  # a submitter's generated script

    @property
    def container(self) -> dict[str, Any]:
        return self.spec["containers"][0]

    def command(self) -> tuple[list[str], list[str]]:
        """The container's (command, args): KubeRay's for Ray containers and submitters."""
        c = self.container
        if self.ray is not None:
            return ["/bin/bash", "-c", "--"], [self.ray.script()]
        if self.script is not None:
            return ["/bin/bash", "-ce", "--"], [self.script]
        return list(c.get("command") or []), list(c.get("args") or [])

    def env(self) -> list[dict[str, Any]]:
        """The container's env list, KubeRay's generated `ray start` line filled in."""
        line = self.ray.line() if self.ray else ""
        return [
            {"name": e["name"], "value": line} if e.get("value") is _GEN_CMD else e
            for e in self.container.get("env") or []
        ]

    def container_port(self, port: int | str) -> int | None:
        """A port number, or a named port of the container, as a number (None: not declared)."""
        if isinstance(port, int) or str(port).isdigit():
            return int(port)
        return next(
            (p["containerPort"] for p in self.container.get("ports") or [] if p.get("name") == port), None
        )


_GEN_CMD: Any = object()  # KUBERAY_GEN_RAY_START_CMD's value: the line, once the params are final


@dataclass
class ServicePlan:
    """A Service's DNS name and where its ports lead: the pod and its container port."""

    name: str
    pod: PodPlan
    ports: dict[int, int]  # service port -> container port
    identity: bool = False  # KubeRay's head services: every port leads to the same port

    def target(self, port: int) -> int | None:
        return port if self.identity else self.ports.get(port)


@dataclass
class RayClusterPlan:
    name: str
    head: PodPlan
    workers: list[PodPlan]
    token_secret: str | None  # the Secret holding `auth_token` (token auth), or None
    token_generated: bool = False  # authOptions name no Secret: the operator generates token_secret

    @property
    def head_service(self) -> str:
        return f"{self.name}-head-svc"

    @property
    def pods(self) -> list[PodPlan]:
        return [self.head, *self.workers]


@dataclass
class RayJobPlan:
    name: str
    cluster: RayClusterPlan
    submitter: PodPlan
    submission_id: str
    dashboard_url: str  # host:port, as the RayJob's status holds it


@dataclass
class Workload:
    """Everything the manifests make: plain pods, Ray clusters, RayJobs and the Services."""

    manifests: Manifests
    pods: list[PodPlan] = field(default_factory=list)
    clusters: list[RayClusterPlan] = field(default_factory=list)
    jobs: list[RayJobPlan] = field(default_factory=list)
    services: list[ServicePlan] = field(default_factory=list)
    tests: list[PodPlan] = field(default_factory=list)  # helm test hooks: run only by `helm test`

    @classmethod
    def of(cls, manifests: Manifests) -> Workload:
        work = cls(manifests)
        for doc in manifests.docs:
            work._add(doc)
        work.services += [s for doc in manifests.of_kind("Service") for s in _services(doc, work.all_pods)]
        return work

    def _add(self, doc: dict[str, Any]) -> None:
        kind, name = doc["kind"], doc["metadata"]["name"]
        if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            if (doc.get("metadata", {}).get("annotations") or {}).get("helm.sh/hook"):
                return
            template = doc["spec"]["template"]
            replicas = doc["spec"].get("replicas", 1) if kind != "Job" else 1
            self.pods += [_pod(f"{name}-{random_suffix(10)}", template, "pod") for _ in range(replicas)]
        elif kind == "Pod" and (doc["metadata"].get("annotations") or {}).get("helm.sh/hook") == "test":
            self.tests.append(_pod(name, doc, "test"))
        elif kind == "Pod" and not (doc["metadata"].get("annotations") or {}).get("helm.sh/hook"):
            self.pods.append(_pod(name, doc, "pod"))
        elif kind == "RayCluster":
            self._add_cluster(ray_cluster(name, doc["spec"], self.manifests.namespace))
        elif kind == "RayJob":
            job = ray_job(doc, self.manifests.namespace)
            self._add_cluster(job.cluster)
            self.jobs.append(job)
            self.services.append(ServicePlan(f"{name}-head-svc", job.cluster.head, {}, identity=True))

    def _add_cluster(self, cluster: RayClusterPlan) -> None:
        self.clusters.append(cluster)
        self.services.append(ServicePlan(cluster.head_service, cluster.head, {}, identity=True))

    @property
    def all_pods(self) -> list[PodPlan]:
        return [*self.pods, *(p for c in self.clusters for p in c.pods), *(j.submitter for j in self.jobs)]

    def cluster(self, name: str | None = None) -> RayClusterPlan:
        return next(c for c in self.clusters if name in (None, c.name))

    def job(self, name: str | None = None) -> RayJobPlan:
        return next(j for j in self.jobs if name in (None, j.name))

    def pod(self, role: str = "pod", container: str | None = None) -> PodPlan:
        """The first pod of a role (and whose container 0 has this name)."""
        return next(p for p in self.all_pods if p.role == role and container in (None, p.container["name"]))


def _pod(name: str, template: dict[str, Any], role: str, labels: dict[str, str] | None = None) -> PodPlan:
    spec = copy.deepcopy(template["spec"])
    pod_labels = {**(template.get("metadata", {}).get("labels") or {}), **(labels or {})}
    return PodPlan(name, role, pod_labels, spec)


def _services(doc: dict[str, Any], pods: list[PodPlan]) -> list[ServicePlan]:
    """A Service's ports resolved on the pod its selector picks (its first)."""
    selector = {"matchLabels": doc["spec"].get("selector") or {}}
    chosen = [p for p in pods if selector["matchLabels"] and selector_matches(selector, p.labels)]
    if not chosen:
        return []
    pod = chosen[0]
    ports = {
        p["port"]: pod.container_port(p.get("targetPort", p["port"])) for p in doc["spec"].get("ports", [])
    }
    return [ServicePlan(doc["metadata"]["name"], pod, {k: v for k, v in ports.items() if v})]


def ray_cluster(name: str, spec: dict[str, Any], namespace: str) -> RayClusterPlan:
    """The head and worker pods KubeRay makes for a RayCluster spec (one pod per worker replica)."""
    auth = spec.get("authOptions") or {}
    token_secret = (auth.get("secretName") or name) if auth.get("mode") == "token" else None
    head_params = dict(spec["headGroupSpec"].get("rayStartParams") or {})
    head_port = head_params.get("port", str(GCS_PORT))
    fqdn = f"{name}-head-svc.{namespace}.svc.{CLUSTER_DOMAIN}"
    head = _ray_pod(
        f"{name}-head-{random_suffix()}",
        spec["headGroupSpec"],
        "headgroup",
        True,
        name,
        namespace,
        head_port,
        fqdn,
        token_secret,
    )
    workers = [
        _ray_pod(
            f"{name}-{group['groupName']}-worker-{random_suffix()}",
            group,
            group["groupName"],
            False,
            name,
            namespace,
            head_port,
            fqdn,
            token_secret,
        )
        for group in spec.get("workerGroupSpecs") or []
        for _ in range(group.get("replicas", 1) * group.get("numOfHosts", 1))
    ]
    generated = bool(token_secret) and not auth.get("secretName")
    return RayClusterPlan(name, head, workers, token_secret, generated)


def _ray_pod(
    name: str,
    group: dict[str, Any],
    group_name: str,
    head: bool,
    cluster: str,
    namespace: str,
    head_port: str,
    fqdn: str,
    token_secret: str | None,
) -> PodPlan:
    pod = _pod(name, group["template"], "head" if head else "worker")
    pod.labels = ray_pod_labels(pod.labels, cluster, head, group_name)
    pod.cluster = cluster
    c = pod.container
    params = dict(group.get("rayStartParams") or {})
    _complete_params(params, head, f"{fqdn}:{head_port}")
    _resource_params(params, c.get("resources") or {})
    own = "".join(
        f" {part} " for part in [*(c.get("command") or []), *(c.get("args") or [])]
    )  # convertCmdToString
    assert "ray start" not in own, f"{name}: a container that runs `ray start` itself is not emulated"
    pod.ray = RayStart(head, params, own)
    env = list(c.get("env") or [])
    if token_secret:
        env += _token_env(env, token_secret)
    c["env"] = env + _ray_env(env, head, cluster, namespace, name, group_name, head_port, fqdn)
    c.setdefault(
        "readinessProbe",
        {"httpGet": {"path": HEALTH_PATH, "port": int(params["dashboard-agent-listen-port"])}},
    )
    pod.spec.setdefault("volumes", []).append({"name": "shared-mem", "emptyDir": {"medium": "Memory"}})
    c.setdefault("volumeMounts", []).append({"name": "shared-mem", "mountPath": "/dev/shm"})
    return pod


FIXED_LABELS = ("ray.io/node-type", "ray.io/group", "ray.io/cluster")  # a template cannot override them


def ray_pod_labels(template: dict[str, str], cluster: str, head: bool, group: str) -> dict[str, str]:
    """labelPod (pod.go): KubeRay's labels, the template's over them but for FIXED_LABELS."""
    node_type = "head" if head else "worker"
    labels = {
        "ray.io/is-ray-node": "yes",
        "ray.io/cluster": cluster,
        "ray.io/node-type": node_type,
        "ray.io/group": group,
        "ray.io/identifier": f"{cluster}-{node_type}"[:63].rstrip("-_."),
        "app.kubernetes.io/name": "kuberay",
        "app.kubernetes.io/created-by": "kuberay-operator",
    }
    return {**labels, **{k: v for k, v in template.items() if k not in FIXED_LABELS}}


def _complete_params(params: dict[str, str], head: bool, address: str) -> None:
    """setMissingRayStartParams."""
    if not head:
        params.setdefault("address", address)
    else:
        params.setdefault("dashboard-host", "0.0.0.0")
    params.setdefault("metrics-export-port", str(METRICS_PORT))
    params["block"] = "true"
    params.setdefault("dashboard-agent-listen-port", str(AGENT_PORT))


def _resource_params(params: dict[str, str], resources: dict[str, Any]) -> None:
    """generateRayStartCommand's CPU, memory and GPU flags from the container's resources."""
    limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
    cpu = limits.get("cpu") or requests.get("cpu")
    if "num-cpus" not in params and cpu and quantity(cpu) != 0:
        params["num-cpus"] = str(quantity_value(cpu))
    if "memory" not in params and limits.get("memory"):
        params["memory"] = str(quantity_value(limits["memory"]))
    for key in sorted(limits):
        if "num-gpus" not in params and key.endswith(GPU_SUFFIX) and quantity(limits[key]) != 0:
            params["num-gpus"] = str(quantity_value(limits[key]))


def _token_env(env: list[dict[str, Any]], secret: str) -> list[dict[str, Any]]:
    """SetContainerTokenAuthEnvVars (token mode, not Kubernetes-token auth)."""
    names = {e["name"] for e in env}
    added = [] if "RAY_AUTH_MODE" in names else [{"name": "RAY_AUTH_MODE", "value": "token"}]
    if "RAY_AUTH_TOKEN" not in names:
        added.append(
            {"name": "RAY_AUTH_TOKEN", "valueFrom": {"secretKeyRef": {"name": secret, "key": "auth_token"}}}
        )
    return added


def _ray_env(
    env: list[dict[str, Any]],
    head: bool,
    cluster: str,
    namespace: str,
    pod: str,
    group: str,
    head_port: str,
    fqdn: str,
) -> list[dict[str, Any]]:
    """setContainerEnvVars (the fieldRefs as the values they resolve to)."""
    names = {e["name"] for e in env}
    added = (
        []
        if head
        else [{"name": "FQ_RAY_IP", "value": fqdn}, {"name": "RAY_IP", "value": fqdn.split(".")[0]}]
    )
    added += [
        {"name": "RAY_CLUSTER_NAME", "value": cluster},
        {"name": "RAY_CLUSTER_NAMESPACE", "value": namespace},
        {"name": "RAY_CLOUD_INSTANCE_ID", "value": pod},
        {"name": "RAY_NODE_TYPE_NAME", "value": group},
        {"name": "KUBERAY_GEN_RAY_START_CMD", "value": _GEN_CMD},
    ]
    if "RAY_PORT" not in names:
        added.append({"name": "RAY_PORT", "value": head_port})
    if "RAY_ADDRESS" not in names:
        added.append({"name": "RAY_ADDRESS", "value": f"{'127.0.0.1' if head else fqdn}:{head_port}"})
    if "RAY_USAGE_STATS_KUBERAY_IN_USE" not in names:
        added.append({"name": "RAY_USAGE_STATS_KUBERAY_IN_USE", "value": "1"})
    if head:
        added.append(
            {"name": "RAY_USAGE_STATS_EXTRA_TAGS", "value": "kuberay_version=v1.7.0;kuberay_crd=RayCluster"}
        )
    if "RAY_DASHBOARD_ENABLE_K8S_DISK_USAGE" not in names:
        added.append({"name": "RAY_DASHBOARD_ENABLE_K8S_DISK_USAGE", "value": "1"})
    return added


def ray_job(doc: dict[str, Any], namespace: str) -> RayJobPlan:
    """A RayJob in K8sJobMode: its generated cluster and the submitter pod."""
    name, spec = doc["metadata"]["name"], doc["spec"]
    assert spec.get("submissionMode", "K8sJobMode") == "K8sJobMode", "only K8sJobMode is emulated"
    cluster = ray_cluster(f"{name}-{random_suffix()}", spec["rayClusterSpec"], namespace)
    submission_id = spec.get("jobId") or f"{name}-{random_suffix()}"
    dashboard = f"{cluster.head_service}.{namespace}.svc.{CLUSTER_DOMAIN}:{DASHBOARD_PORT}"
    template = spec.get("submitterPodTemplate") or {
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "ray-job-submitter",
                    "image": cluster.head.container["image"],
                    "resources": {
                        "limits": {"cpu": "1", "memory": "1Gi"},
                        "requests": {"cpu": "500m", "memory": "200Mi"},
                    },
                }
            ],
        }
    }
    submitter = _pod(
        f"{name}-{random_suffix()}", template, "submitter", {"ray.io/originated-from-cr-name": name}
    )
    submitter.cluster = cluster.name
    c = submitter.container
    if not c.get("command"):
        submitter.script = " ".join(submit_command(spec, f"http://{dashboard}", submission_id))
    c["env"] = [
        *(c.get("env") or []),
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        {"name": "RAY_DASHBOARD_ADDRESS", "value": dashboard},
        {"name": "RAY_JOB_SUBMISSION_ID", "value": submission_id},
    ]
    if cluster.token_secret:
        c["env"] += _token_env(c["env"], cluster.token_secret)
    return RayJobPlan(name, cluster, submitter, submission_id, dashboard)


def _go_json(value: Any, sort_keys: bool = False) -> str:
    """JSON as Go's encoding/json writes it: compact (a map's keys sorted)."""
    return json.dumps(value, separators=(",", ":"), sort_keys=sort_keys)


def submit_command(spec: dict[str, Any], address: str, job_id: str) -> list[str]:
    """BuildJobSubmitCommand for K8sJobMode: wait for the GCS, submit unless the id exists, follow."""
    health = PYTHON_HEALTH.format(url=f"{address}/{GCS_HEALTH_PATH}")
    waiting = json.dumps(f"Waiting for Ray Dashboard GCS to become healthy at {address} ...")
    cmd = [
        "until",
        health,
        ">/dev/null",
        "2>&1",
        ";",
        "do",
        "echo",
        waiting,
        ";",
        "sleep",
        "2",
        ";",
        "done",
        ";",
        "if",
        "!",
        "ray",
        "job",
        "status",
        "--address",
        address,
        job_id,
        ">/dev/null",
        "2>&1",
        ";",
        "then",
        "ray",
        "job",
        "submit",
        "--address",
        address,
        "--no-wait",
    ]
    if spec.get("runtimeEnvYAML"):
        cmd += ["--runtime-env-json", json.dumps(_go_json(yaml.safe_load(spec["runtimeEnvYAML"])))]
    if spec.get("metadata"):
        cmd += ["--metadata-json", json.dumps(_go_json(spec["metadata"], sort_keys=True))]
    cmd += ["--submission-id", job_id]
    if spec.get("entrypointNumCpus"):
        cmd += ["--entrypoint-num-cpus", f"{float(spec['entrypointNumCpus']):f}"]
    if spec.get("entrypointNumGpus"):
        cmd += ["--entrypoint-num-gpus", f"{float(spec['entrypointNumGpus']):f}"]
    if spec.get("entrypointResources"):
        cmd += ["--entrypoint-resources", json.dumps(spec["entrypointResources"])]
    cmd += [
        "--",
        spec["entrypoint"].strip(),
        ";",
        "fi",
        ";",
        "ray",
        "job",
        "logs",
        "--address",
        address,
        "--follow",
        job_id,
    ]
    return cmd
