"""The Helm chart, offline: lint, render, validate every kind (built-in and custom), refuse
broken values with the field named, restricted pods, and alerts that fire when they should."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.charts.k8s_checks import (
    CHART,
    crd_problems,
    helm_template,
    is_custom,
    kubernetes_validate,
    pod_specs,
    restricted_violations,
)
from tests.conftest import need_tool

ALL_ON = CHART / "ci" / "all-on-values.yaml"
EXISTING = CHART / "ci" / "existing-cluster-values.yaml"
OBJECT_STORE = CHART / "ci" / "object-store-values.yaml"
VALUES = {"default": (), "all-on": (ALL_ON,), "existing-cluster": (EXISTING,),
          "object-store": (OBJECT_STORE,)}  # fmt: skip


def settings_defaults_keys() -> set[str]:
    from slimray.service.settings import Settings
    from tests.charts.chart_settings import CHART_DECIDED

    return set(Settings.model_fields) - CHART_DECIDED


def settings_file(docs: list[dict]) -> dict:
    """The service's settings as the chart renders them (its settings ConfigMap)."""
    cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-settings"))
    return json.loads(cm["data"]["settings.json"])


@pytest.fixture(scope="module", params=list(VALUES))
def rendered(request):
    return request.param, helm_template(*VALUES[request.param])


@pytest.mark.parametrize("values", list(VALUES))
def test_helm_lint_strict(values):
    helm = need_tool("helm")
    args = [helm, "lint", "--strict", str(CHART)] + [a for v in VALUES[values] for a in ("-f", str(v))]
    proc = subprocess.run(args, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_built_in_kinds_pass_kubernetes_validate_strict(rendered, tmp_path):
    _, docs = rendered
    kubernetes_validate([d for d in docs if not is_custom(d)], tmp_path)


def test_custom_resources_match_their_crds(rendered):
    _, docs = rendered
    for doc in filter(is_custom, docs):
        assert crd_problems(doc) == [], (doc["kind"], crd_problems(doc))


def test_every_pod_meets_the_restricted_standard(rendered):
    _, docs = rendered
    pods = [p for d in docs for p in pod_specs(d)]
    assert pods
    assert [v for where, pod in pods for v in restricted_violations(where, pod)] == []


def test_the_all_on_values_render_every_optional_part():
    kinds = {d["kind"] for d in helm_template(ALL_ON)}
    assert {"Deployment", "Service", "ServiceAccount", "Secret", "PersistentVolumeClaim", "RayCluster",
            "ServiceMonitor", "PodMonitor", "PrometheusRule", "ConfigMap", "NetworkPolicy", "Ingress",
            "Pod"} <= kinds  # fmt: skip


def test_the_service_is_one_recreated_replica_with_probes_and_the_ray_token():
    docs = helm_template()
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    env = {e["name"]: e for e in container["env"]}
    cluster = next(d for d in docs if d["kind"] == "RayCluster")
    # no token given: the Ray token from the Secret KubeRay generates, named after the RayCluster
    assert cluster["spec"]["authOptions"] == {"mode": "token"}
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    (secrets,) = [v["projected"] for v in volumes if "projected" in v]
    item = {"key": "auth_token", "path": "SLIMRAY_RAY_TOKEN"}
    assert secrets["sources"] == [{"secret": {"name": cluster["metadata"]["name"], "items": [item]}}]
    assert env["SLIMRAY_RAY_ADDRESS"]["value"] == f"http://{cluster['metadata']['name']}-head-svc.ml.svc:8265"
    runs = {m["mountPath"] for m in container["volumeMounts"]}
    for _, pod in pod_specs(cluster):  # the same runs volume at the same path everywhere
        mounts = {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
        assert env["SLIMRAY_RUNS_ROOT"]["value"] in runs & mounts
    assert env["SLIMRAY_RUNS_SHARED"]["value"] == "true"
    assert set(settings_file(docs)) == {k for k in settings_defaults_keys()}  # the values' settings only
    cpu, gpu = cluster["spec"]["workerGroupSpecs"]
    assert "nvidia.com/gpu" not in cpu["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert gpu["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert {gpu["minReplicas"], gpu["maxReplicas"]} == {0, 4}


def test_the_object_store_replaces_the_runs_volume_everywhere():
    docs = helm_template(OBJECT_STORE)
    claims = [d["metadata"]["name"] for d in docs if d["kind"] == "PersistentVolumeClaim"]
    assert len(claims) == 1 and claims[0].endswith("-store")  # the job store's; no runs volume
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    cluster = next(d for d in docs if d["kind"] == "RayCluster")
    pods = [("api", deployment["spec"]["template"]["spec"]), *pod_specs(cluster)]
    keys = {"name": "slimray-s3", "key": "AWS_SECRET_ACCESS_KEY"}
    for where, pod in pods:  # the service, the Ray head and the workers: one store, one set of keys
        env = {e["name"]: e for e in pod["containers"][0]["env"]}
        assert env["AWS_ENDPOINT_URL"]["value"] == "http://minio.storage.svc:9000", where
        assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == keys, where
        assert "runs" not in {v["name"] for v in pod.get("volumes", [])}, where
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["SLIMRAY_RUNS_ROOT"]["value"] == "s3://ml-runs/slimray"
    assert env["SLIMRAY_RUNS_SHARED"]["value"] == "false"
    plain = next(d for d in helm_template() if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    assert not any(e["name"].startswith("AWS_") for e in plain["containers"][0]["env"])


@pytest.mark.parametrize(("setting", "field"), [
    ("service.port=http", "/service/port"),
    ("settings.limits.maxWorkers=-3", "/settings/limits/maxWorkers"),
    ("monitoring.serviceMonitor.interval=soon", "/monitoring/serviceMonitor/interval"),
    ("ray.cluster.rayVersion=2.9.0", "/ray/cluster/rayVersion"),
    ("bogus=1", "'bogus'"),
    ("extraEnv[0].name=SLIMRAY_API_TOKEN", "/extraEnv/0"),  # a setting (or a token) in plain env
    ("monitoring.dashbord.enabled=true", "'dashbord'"),
    ("objectStore.enabled=true", "/objectStore/runsRoot"),  # on, but no URI
    ("objectStore.runsRoot=my-bucket/runs", "/objectStore/runsRoot"),  # a path, not a URI
])  # fmt: skip
def test_broken_values_are_refused_naming_the_field(setting, field):
    helm = need_tool("helm")
    proc = subprocess.run(
        [helm, "template", "r", str(CHART), "--set", setting], capture_output=True, text=True
    )
    assert proc.returncode != 0 and field in proc.stderr, proc.stderr


def test_the_dashboard_is_a_sidecar_configmap_with_a_datasource_variable():
    docs = helm_template(ALL_ON)
    cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboard"))
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(cm["data"]["slimray.json"])
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["job"]["type"] == "query"
    assert dashboard["annotations"]["list"][0]["expr"].startswith("changes(slimray_prune_events_total")


# ------------------------------------------------------------------ PromQL: rules and dashboard


def _rule_groups() -> dict:
    rule = next(d for d in helm_template(ALL_ON) if d["kind"] == "PrometheusRule")
    return {"groups": rule["spec"]["groups"]}


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((CHART / "files" / "dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    return exprs + [a["expr"] for a in dashboard["annotations"]["list"]]


def test_promtool_checks_the_rules_and_every_dashboard_expression(tmp_path):
    promtool = need_tool("promtool")
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(_rule_groups()))
    exprs = [e.replace("$job", ".+") for e in dashboard_exprs()]
    records = [{"record": f"dashboard:expr{i}", "expr": e} for i, e in enumerate(exprs)]
    recording = {"groups": [{"name": "dashboard", "rules": records}]}
    (tmp_path / "dashboard.yaml").write_text(yaml.safe_dump(recording))
    for path in (rules, tmp_path / "dashboard.yaml"):
        proc = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_each_alert_fires_on_a_synthetic_series_and_stays_quiet_on_a_healthy_one(tmp_path):
    promtool = need_tool("promtool")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(_rule_groups()))
    (tmp_path / "tests.yaml").write_text((Path(__file__).parent / "alert_tests.yaml").read_text())
    proc = subprocess.run([promtool, "test", "rules", "tests.yaml"], capture_output=True, text=True,
                          cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_value_is_documented_and_typed():
    """Each key holding a value (not a section) has a `# --` comment right above it, and the
    schema types every key the defaults set."""
    import re

    lines = (CHART / "values.yaml").read_text().splitlines()
    undocumented, stack = [], []  # stack: (indent, documented) of the enclosing keys
    for i, line in enumerate(lines):
        match = re.match(r"^(\s*)(- )?([A-Za-z][\w./-]*):(\s+\S.*)?$", line)
        if not match:
            continue
        indent = len(match.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        comments = []  # the comment block right above the key
        for above in reversed(lines[:i]):
            if not above.strip().startswith("#"):
                break
            comments.append(above.strip())
        documented = bool(comments) and comments[-1].startswith("# --")
        inherited = any(doc for _, doc in stack)
        next_line = lines[i + 1].strip() if i + 1 < len(lines) else ""
        section = match.group(4) is None and not next_line.startswith("- ")
        if not (documented or inherited or section):
            undocumented.append(line.strip())
        stack.append((indent, documented or inherited))
    assert undocumented == []
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def untyped(value, node, path):
        if isinstance(value, dict) and node.get("additionalProperties") is False:
            for key, item in value.items():
                if key not in node["properties"]:
                    yield f"{path}.{key}"
                else:
                    yield from untyped(item, node["properties"][key], f"{path}.{key}")

    assert list(untyped(values, schema, "")) == []


def test_an_ingress_without_tls_is_refused_unless_explicitly_waived():
    """Regression (issue 23 L9): ingress.enabled without TLS rendered a plain-HTTP Ingress."""
    helm = need_tool("helm")
    args = [helm, "template", "r", str(CHART), "--set", "ingress.enabled=true"]
    proc = subprocess.run(args, capture_output=True, text=True)
    assert proc.returncode != 0, proc.stdout
    assert "ingress.tlsSecret" in proc.stderr and "allowPlainHttp" in proc.stderr, proc.stderr
    assert 'tlsSecret=""' in proc.stderr, proc.stderr  # the value received
    waived = helm_template(sets=("ingress.enabled=true", "ingress.allowPlainHttp=true"))
    assert "tls" not in next(d for d in waived if d["kind"] == "Ingress")["spec"]
    secured = helm_template(sets=("ingress.enabled=true", "ingress.tlsSecret=slimray-tls"))
    [tls] = next(d for d in secured if d["kind"] == "Ingress")["spec"]["tls"]
    assert tls["secretName"] == "slimray-tls"


def _env_of(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


@pytest.mark.parametrize(("values", "sets", "warm"), [((), (), True), ((EXISTING,), (), False),
                                                      ((), ("ray.warm=false",), False)])  # fmt: skip
def test_the_service_keeps_only_the_charts_own_ray_cluster_warm(values, sets, warm):
    """Issue 27: `ray.warm` preloads TensorFlow on the chart's Ray pods and has the service keep
    them warm; an existing cluster (ray.address) is its operator's, and gets no warm job."""
    need_tool("helm")
    docs = helm_template(*values, sets=sets)
    api = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert _env_of(api)["SLIMRAY_KEEP_WARM"] == str(warm).lower()
    ray_containers = [c for d in docs if d["kind"] == "RayCluster"
                      for spec in [d["spec"]["headGroupSpec"], *d["spec"]["workerGroupSpecs"]]
                      for c in spec["template"]["spec"]["containers"]]  # fmt: skip
    assert bool(ray_containers) == (EXISTING not in values)
    for container in ray_containers:
        assert ("RAY_preload_python_modules" in _env_of(container)) == warm, container["name"]
