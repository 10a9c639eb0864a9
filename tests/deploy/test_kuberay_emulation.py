"""The operator emulation itself (no Docker): the `ray start` lines, env and submitter script it
builds match what KubeRay v1.7.0 builds (the expectations of its own pod_test.go and
job_test.go), and the one-machine adaptations touch only what the module docstrings say."""

from __future__ import annotations

import json

import pytest

from tests.deploy.kuberay import Manifests, Workload, ray_cluster, submit_command
from tests.deploy.machine import Machine


def _group(params: dict, limits: dict, **container) -> dict:
    return {
        "rayStartParams": params,
        "template": {
            "spec": {
                "containers": [
                    {"name": "ray", "image": "slimray:0.1.0", "resources": {"limits": limits}, **container}
                ]
            }
        },
    }


def _cluster(head: dict, worker: dict, **spec):
    return ray_cluster(
        "raycluster-sample",
        {
            "headGroupSpec": head,
            "workerGroupSpecs": [{"groupName": "small", "replicas": 1, **worker}],
            **spec,
        },
        "default",
    )


def test_ray_start_lines_as_kuberay_builds_them():
    """pod_test.go: TestBuildPod (head) and TestBuildPod_WithGpuLimits-style workers."""
    cluster = _cluster(
        _group({}, {"cpu": "1", "memory": "1Gi"}),
        _group({"port": "6379"}, {"cpu": "500m", "memory": "1Gi", "nvidia.com/gpu": 3}),
    )
    assert cluster.head.ray.line() == (
        "ray start --head  --block  --dashboard-agent-listen-port=52365  --dashboard-host=0.0.0.0 "
        " --memory=1073741824  --metrics-export-port=8080  --num-cpus=1 "
    )
    assert cluster.workers[0].ray.line() == (
        "ray start  --address=raycluster-sample-head-svc.default.svc.cluster.local:6379  --block "
        " --dashboard-agent-listen-port=52365  --memory=1073741824  --metrics-export-port=8080 "
        " --num-cpus=1  --num-gpus=3  --port=6379 "
    )
    command, args = cluster.head.command()
    assert command == ["/bin/bash", "-c", "--"]
    assert args == ["ulimit -n ${RAY_START_ULIMIT_OPEN_FILES:-65536}; " + cluster.head.ray.line()]


def test_booleans_own_commands_and_token_auth():
    head = _group(
        {
            "num-cpus": "0",
            "disable-usage-stats": "true",
            "include-dashboard": "false",
            "log-color": "true",
            "verbose": "false",
        },
        {"memory": "2Gi"},
        command=["echo", "hi"],
        env=[{"name": "X", "value": "1"}],
    )
    cluster = _cluster(head, _group({}, {"cpu": "2"}), authOptions={"mode": "token"})
    line = cluster.head.ray.line()
    assert " --disable-usage-stats " in line and " --include-dashboard=false " in line
    assert " --log-color=true " in line and "verbose" not in line and " --num-cpus=0 " in line
    assert cluster.head.command()[1] == [
        f" echo  hi  && ulimit -n ${{RAY_START_ULIMIT_OPEN_FILES:-65536}}; {line}"
    ]
    env = {e["name"]: e for e in cluster.head.env()}
    assert env["X"]["value"] == "1" and env["RAY_AUTH_MODE"]["value"] == "token"
    assert env["RAY_AUTH_TOKEN"]["valueFrom"] == {
        "secretKeyRef": {"name": "raycluster-sample", "key": "auth_token"}
    }
    assert (
        env["RAY_ADDRESS"]["value"] == "127.0.0.1:6379" and env["KUBERAY_GEN_RAY_START_CMD"]["value"] == line
    )
    worker = {e["name"]: e.get("value") for e in cluster.workers[0].env()}
    assert worker["RAY_ADDRESS"] == "raycluster-sample-head-svc.default.svc.cluster.local:6379"
    assert worker["RAY_IP"] == "raycluster-sample-head-svc"


def test_the_submitter_script_as_kuberay_builds_it():
    """job_test.go: TestBuildJobSubmitCommandWithK8sJobModeAndYAML."""
    spec = {
        "runtimeEnvYAML": 'working_dir: "https://example.invalid/a.zip"\npip: ["python-multipart==0.0.6"]\n',
        "metadata": {"testKey": "testValue"},
        "entrypoint": "echo no quote 'single quote' \"double quote\"",
    }
    health = (
        'python -c "import urllib.request; '
        "r=urllib.request.urlopen('http://127.0.0.1:8265/api/gcs_healthz', timeout=10); "
        "exit(0 if b'success' in r.read() else 1)\""
    )
    address = "http://127.0.0.1:8265"
    assert submit_command(spec, address, "testJobId") == [
        "until",
        health,
        ">/dev/null",
        "2>&1",
        ";",
        "do",
        "echo",
        json.dumps(f"Waiting for Ray Dashboard GCS to become healthy at {address} ..."),
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
        "testJobId",
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
        "--runtime-env-json",
        json.dumps('{"working_dir":"https://example.invalid/a.zip","pip":["python-multipart==0.0.6"]}'),
        "--metadata-json",
        json.dumps('{"testKey":"testValue"}'),
        "--submission-id",
        "testJobId",
        "--",
        "echo no quote 'single quote' \"double quote\"",
        ";",
        "fi",
        ";",
        "ray",
        "job",
        "logs",
        "--address",
        address,
        "--follow",
        "testJobId",
    ]


def test_the_chart_on_one_machine_only_moves_ports_and_binds(tmp_path):
    """The adaptations: free ports, loopback binds, the head's RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0;
    the operator's part: the chart names no token Secret, so one named after the cluster is made
    and the Ray pods and the service read the same token from it."""
    from tests.charts.k8s_checks import helm_template

    work = Workload.of(Manifests(helm_template(), namespace="ml"))
    m = Machine(work, tmp_path)
    cluster = work.cluster()
    head, worker = cluster.head, cluster.workers[0]
    gcs, dashboard = m.host_port(head, 6379), m.host_port(head, 8265)
    assert {6379, 8265, 8080, 52365} & {gcs, dashboard} == set()
    params = head.ray.params
    assert params["port"] == str(gcs) and params["dashboard-port"] == str(dashboard)
    assert params["dashboard-host"] == "127.0.0.1" and params["block"] == "true"
    assert worker.ray.params["address"] == f"{cluster.head_service}.ml.svc.cluster.local:{gcs}"
    head_env, worker_env = m.env(head), m.env(worker)
    assert (
        head_env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0"
        and "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER" not in worker_env
    )
    assert head_env["RAY_ADDRESS"] == f"127.0.0.1:{gcs}" and worker_env["RAY_PORT"] == str(gcs)
    assert cluster.token_generated and cluster.token_secret == cluster.name
    api = work.pod("pod", container="api")
    argv, _ = m.docker_run(api)  # the api's token is a file of its projected volume
    token_file = tmp_path / "volumes" / api.name / "secrets" / "SLIMRAY_RAY_TOKEN"
    assert f"{token_file.parent}:{m.env(api)['SLIMRAY_SECRETS_DIR']}:ro" in argv
    assert token_file.stat().st_mode & 0o777 == 0o440
    assert (
        head_env["RAY_AUTH_TOKEN"]
        == work.manifests.secret(cluster.name)["auth_token"]
        == worker_env["RAY_AUTH_TOKEN"]
        == token_file.read_text()
    )
    assert "0.0.0.0" not in " ".join(argv) and "--read-only" in argv and "no-new-privileges" in argv
    assert argv[argv.index("--user") + 1] == "10001:0" and argv[argv.index("--cap-drop") + 1] == "ALL"


def test_the_operator_generates_a_token_secret_only_for_a_cluster_that_names_none(tmp_path):
    """KubeRay makes `<cluster>` (auth_token) when authOptions name no Secret; a named one must exist."""
    clusters = [
        ray_cluster(name, {"headGroupSpec": _group({}, {"cpu": "1"}), "authOptions": auth}, "ml")
        for name, auth in (("own", {"mode": "token"}), ("named", {"mode": "token", "secretName": "mine"}))
    ]
    work = Workload(Manifests([], namespace="ml"), clusters=clusters)
    m = Machine(work, tmp_path)
    assert len(m.ray_token(clusters[0])) >= 32 and m.env(clusters[0].head)["RAY_AUTH_TOKEN"] == m.ray_token(
        clusters[0]
    )
    assert "mine" not in work.manifests.given_secrets
    with pytest.raises(KeyError, match="'mine'"):  # the kubelet: CreateContainerConfigError
        m.env(clusters[1].head)
