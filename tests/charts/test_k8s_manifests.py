"""k8s/: the RayCluster, the RayJob (with its spec ConfigMap) and the PodMonitor validate against
their CRDs and Kubernetes, their pods are restricted, and the job they run is a valid spec."""

from __future__ import annotations

import shlex

import pytest
import yaml

from slimray.core.spec import parse_spec
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
    expected = {"raycluster.yaml", "rayjob.yaml", "podmonitor.yaml", "networkpolicy.yaml"}
    assert {p.name for p in MANIFESTS} >= expected


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


# ------------------------------------------------------------------ each job on its own cluster


def _cluster_nodes(cluster: dict) -> tuple[int, int]:
    """Nodes of a RayCluster spec: head plus the workers at start, and at most."""
    groups = cluster.get("workerGroupSpecs", [])
    return 1 + sum(g.get("replicas", 0) for g in groups), 1 + sum(g.get("maxReplicas", 0) for g in groups)


RAYJOBS = [d for d in DOCS if d["kind"] == "RayJob"]


@pytest.mark.parametrize("job", RAYJOBS, ids=lambda d: d["metadata"]["name"])
def test_each_rayjobs_spec_passes_slimrays_own_checks_on_the_cluster_it_declares(job):
    spec = _job_spec(job)
    for nodes in _cluster_nodes(job["spec"]["rayClusterSpec"]):
        assert spec.output.cluster_problem(nodes) is None, nodes
    workers = sum(g["replicas"] for g in job["spec"]["rayClusterSpec"]["workerGroupSpecs"])
    assert workers >= 1  # the head has num-cpus 0: a job needs a worker pod from the start


def _gpus(container: dict) -> int:
    limits = container.get("resources", {}).get("limits", {})
    return sum(int(v) for k, v in limits.items() if k.endswith("gpu"))


def gpu_group_problems(cluster: dict, where: str) -> list[str]:
    """A worker group with GPUs runs the CUDA image (tag -gpu); one without runs the CPU image."""
    bad = []
    for group in cluster.get("workerGroupSpecs", []):
        container = group["template"]["spec"]["containers"][0]
        gpu_image = container["image"].rpartition(":")[2].endswith("-gpu")
        if (_gpus(container) > 0) != gpu_image:
            name, gpus = group["groupName"], _gpus(container)
            bad.append(f"{where} group {name}: {gpus} GPUs, image {container['image']}")
    return bad


def test_gpu_groups_run_the_cuda_image_and_their_jobs_set_use_gpu():
    clusters = [(f"RayCluster/{d['metadata']['name']}", d["spec"]) for d in DOCS if d["kind"] == "RayCluster"]
    clusters += [(f"RayJob/{d['metadata']['name']}", d["spec"]["rayClusterSpec"]) for d in RAYJOBS]
    assert [p for where, c in clusters for p in gpu_group_problems(c, where)] == []
    for job in RAYJOBS:  # a job on a cluster whose only workers have GPUs uses them
        groups = job["spec"]["rayClusterSpec"]["workerGroupSpecs"]
        all_gpu = all(_gpus(g["template"]["spec"]["containers"][0]) > 0 for g in groups)
        assert _job_spec(job).scaling.use_gpu is all_gpu, job["metadata"]["name"]
    assert any(_job_spec(j).scaling.use_gpu for j in RAYJOBS)  # the GPU path has a sample


def test_the_charts_gpu_groups_run_the_cuda_image():
    from tests.charts.k8s_checks import helm_template

    docs = helm_template(sets=("image.tag=1.2.3",))
    cluster = next(d for d in docs if d["kind"] == "RayCluster")
    assert gpu_group_problems(cluster["spec"], "chart") == []
    images = {g["groupName"]: g["template"]["spec"]["containers"][0]["image"]
              for g in cluster["spec"]["workerGroupSpecs"]}  # fmt: skip
    assert images == {"cpu": "slimray:1.2.3", "gpu": "slimray:1.2.3-gpu"}


def _shape(cluster: dict) -> dict:
    """What must agree between the chart's RayCluster and k8s/: per pod, what KubeRay starts."""

    def pod(template: dict, params: dict) -> dict:
        spec = template["spec"]
        container = spec["containers"][0]
        return {"params": params, "image": container["image"].rpartition(":")[2].endswith("-gpu"),
                "resources": container["resources"], "securityContext": container["securityContext"],
                "podSecurityContext": spec["securityContext"], "mounts": sorted(m["mountPath"] for m in
                container["volumeMounts"]), "nodeSelector": spec.get("nodeSelector"),
                "tolerations": spec.get("tolerations")}  # fmt: skip

    head = cluster["headGroupSpec"]
    shape = {"head": pod(head["template"], head["rayStartParams"]),
             "auth": cluster["authOptions"]["mode"], "rayVersion": cluster["rayVersion"],
             "autoscaling": cluster["enableInTreeAutoscaling"]}  # fmt: skip
    for g in cluster["workerGroupSpecs"]:
        shape[g["groupName"]] = {**pod(g["template"], g["rayStartParams"]), "replicas": g["replicas"],
                                 "min": g["minReplicas"], "max": g["maxReplicas"]}  # fmt: skip
    return shape


def test_the_k8s_raycluster_agrees_with_the_charts():
    from tests.charts.k8s_checks import helm_template

    chart = next(d for d in helm_template() if d["kind"] == "RayCluster")["spec"]
    ours = _named("RayCluster", "slimray")["spec"]
    assert _shape(ours) == _shape(chart)


def test_token_comments_name_the_secret_kuberay_makes():
    """KubeRay names the token Secret after the RayCluster (a RayJob's: the cluster it generates)."""
    for path in MANIFESTS:
        text = path.read_text()
        for doc in yaml.safe_load_all(text):
            if doc and doc["kind"] == "RayCluster":
                assert f"Secret `{doc['metadata']['name']}`" in text, path.name
            if doc and doc["kind"] == "RayJob":
                assert "rayClusterName" in text and "Secret `slimray`" not in text, path.name


@pytest.mark.parametrize("job", RAYJOBS, ids=lambda d: d["metadata"]["name"])
def test_each_rayjobs_cluster_has_the_charts_pods(job):
    """The head and each worker group of a RayJob's cluster are the chart's same-named ones (what
    KubeRay starts: params, image kind, resources, security, scheduling), mounts and counts aside."""
    from tests.charts.k8s_checks import helm_template

    def comparable(shape: dict) -> dict:
        drop = ("mounts", "replicas", "min", "max")
        return {k: {f: v for f, v in p.items() if f not in drop} if isinstance(p, dict) else p
                for k, p in shape.items()}  # fmt: skip

    chart = comparable(_shape(next(d for d in helm_template() if d["kind"] == "RayCluster")["spec"]))
    ours = comparable(_shape(job["spec"]["rayClusterSpec"]))
    assert {k: ours[k] for k in ours} == {k: chart[k] for k in ours}
