"""Issue 23 L8: the chart never invents tokens (two `helm template` runs are equal; the default
values and each ci/ file render alone: without token values the chart renders no Secret, KubeRay
generates the Ray token and the service keeps its own admin token, which the notes say how to
read; existing Secrets and explicit values are used as given), every image it renders can be
pinned by digest, and every emptyDir has a size limit (chart and k8s/)."""

from __future__ import annotations

import base64
import re
import subprocess
from pathlib import PurePosixPath

import pytest
import yaml

from tests.charts.k8s_checks import CHART, ROOT, helm_template, pod_specs
from tests.charts.test_chart import VALUES
from tests.conftest import need_tool

DIGEST, GPU_DIGEST = "sha256:" + "a" * 64, "sha256:" + "b" * 64
# what an installer may give instead of Secrets it manages (16 characters at least)
EXPLICIT = {"auth.apiToken": "an-installers-admin-token", "auth.metricsToken": "an-installers-metrics-token",
            "ray.cluster.token": "an-installers-ray-token-for-tests"}  # fmt: skip
EXPLICIT_SETS = tuple(f"{k}={v}" for k, v in EXPLICIT.items())
GIVEN_SECRETS = ("auth.existingSecret=slimray-auth", "ray.tokenSecret=slimray-ray-token")


def _helm(*args: str, command: tuple[str, ...] = ("template",)) -> subprocess.CompletedProcess:
    return subprocess.run([need_tool("helm"), *command, "r", str(CHART), "--namespace", "ml", *args],
                          capture_output=True, text=True)  # fmt: skip


def _sets(sets: tuple[str, ...]) -> list[str]:
    return [a for s in sets for a in ("--set", s)]


TOKEN_VARS = {"SLIMRAY_API_TOKEN", "SLIMRAY_METRICS_TOKEN", "SLIMRAY_RAY_TOKEN"}


def _token_files(pod: dict) -> dict[str, dict]:
    """A pod's token files: file name -> the Secret key it holds ({name, key})."""
    files = {}
    for volume in pod.get("volumes", []):
        sources = [s["secret"] for s in (volume.get("projected") or {}).get("sources", []) if "secret" in s]
        if "secret" in volume:
            sources.append({**volume["secret"], "name": volume["secret"]["secretName"]})
        for secret in sources:
            files.update({i["path"]: {"name": secret["name"], "key": i["key"]} for i in secret["items"]})
    return files


def _api(docs: list[dict]) -> tuple[dict, dict, dict]:
    """The api container's env (by name), its token files and the test pod's. Regression (issue
    23 L8): tokens were env vars, readable in any /proc/<pid>/environ of the service's user."""
    pods = dict(p for d in docs for p in pod_specs(d))
    (api,) = [p for where, p in pods.items() if where.startswith("Deployment/")]
    (test,) = [p for where, p in pods.items() if where.startswith("Pod/")]
    env = {e["name"]: e for e in api["containers"][0]["env"]}
    assert not TOKEN_VARS & {e["name"] for p in (api, test) for e in p["containers"][0].get("env", [])}
    files = _token_files(api)
    if files:
        (mount,) = [m for m in api["containers"][0]["volumeMounts"] if m["name"] == "secrets"]
        assert mount["readOnly"] and env["SLIMRAY_SECRETS_DIR"]["value"] == mount["mountPath"]
        (volume,) = [v for v in api["volumes"] if v["name"] == "secrets"]
        assert volume["projected"]["defaultMode"] == 0o440
    return env, files, _token_files(test)


@pytest.mark.parametrize("values", [*VALUES, "explicit"])
def test_two_renders_are_identical(values):
    """Regression: `lookup` finds nothing under `helm template`, and the chart made new random
    tokens at every render (GitOps: every sync changed the Secrets, running jobs' tokens broke).
    The default values and each ci/ file render alone (no token values added)."""
    files = [a for v in VALUES.get(values, ()) for a in ("-f", str(v))]
    args = _sets(EXPLICIT_SETS) if values == "explicit" else files
    first, second = _helm(*args), _helm(*args)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout


def test_without_token_values_kuberay_and_the_service_keep_the_tokens():
    """Regression: the default values failed to render (no admin token). Now no Secret, no
    SLIMRAY_API_TOKEN (the service keeps its own); the Ray token is the one KubeRay generates."""
    docs = helm_template()
    assert not [d["metadata"]["name"] for d in docs if d["kind"] == "Secret"]
    _, files, test_files = _api(docs)
    assert not test_files  # helm test: /readyz and an anonymous call refused
    cluster = next(d for d in docs if d["kind"] == "RayCluster")
    assert cluster["spec"]["authOptions"] == {"mode": "token"}  # KubeRay: a Secret named after it
    assert files == {"SLIMRAY_RAY_TOKEN": {"name": cluster["metadata"]["name"], "key": "auth_token"}}


def _notes(*sets: str) -> str:
    proc = _helm(*_sets(sets), command=("install", "--dry-run=client"))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout[proc.stdout.index("NOTES:") :]


def test_the_notes_say_where_the_admin_token_is():
    """Without a token the notes read the service's own one with `kubectl exec` (the file the
    service keeps next to its store) and point GitOps to existingSecret; with one, its Secret."""
    docs = helm_template()
    env, _, _ = _api(docs)
    token_file = PurePosixPath(env["SLIMRAY_DB_PATH"]["value"]).parent / "token"  # slimray serve's
    deployment = next(d for d in docs if d["kind"] == "Deployment")["metadata"]["name"]
    notes = _notes()
    assert f"kubectl -n ml exec deploy/{deployment} -c api -- cat {token_file}" in notes, notes
    assert "auth.existingSecret" in notes and "GitOps" in notes
    notes = _notes("auth.existingSecret=mine")
    assert "get secret mine -o jsonpath='{.data.api-token}'" in notes and "exec" not in notes, notes


@pytest.mark.parametrize(("sets", "named"), [
    (("monitoring.serviceMonitor.enabled=true",), ("auth.metricsToken", "auth.existingSecret")),
    (("monitoring.serviceMonitor.enabled=true", "auth.apiToken=an-admin-token-0123"), ("auth.metricsToken",)),
])  # fmt: skip
def test_a_service_monitor_without_a_metrics_token_fails_naming_the_values(sets, named):
    proc = _helm(*_sets(sets))
    assert proc.returncode != 0, proc.stdout
    assert all(name in proc.stderr for name in named), proc.stderr


def test_existing_secrets_mean_no_rendered_secret_and_are_used_everywhere():
    sets = (*GIVEN_SECRETS, "monitoring.serviceMonitor.enabled=true")
    docs = helm_template(sets=sets)
    assert not [d["metadata"]["name"] for d in docs if d["kind"] == "Secret"]
    _, files, test_files = _api(docs)
    auth = {"name": "slimray-auth", "key": "api-token"}
    assert files == {"SLIMRAY_API_TOKEN": auth, "SLIMRAY_METRICS_TOKEN": {**auth, "key": "metrics-token"},
                     "SLIMRAY_RAY_TOKEN": {"name": "slimray-ray-token", "key": "auth_token"}}  # fmt: skip
    assert test_files == {"SLIMRAY_API_TOKEN": auth}
    cluster = next(d for d in docs if d["kind"] == "RayCluster")
    assert cluster["spec"]["authOptions"]["secretName"] == "slimray-ray-token"
    (endpoint,) = next(d for d in docs if d["kind"] == "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["authorization"]["credentials"] == {"name": "slimray-auth", "key": "metrics-token"}


def test_explicit_tokens_are_rendered_as_given():
    docs = helm_template(sets=EXPLICIT_SETS)
    secrets = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "Secret"}
    decoded = {
        name: {k: base64.b64decode(v).decode() for k, v in data.items()} for name, data in secrets.items()
    }
    assert decoded["r-slimray-auth"] == {"api-token": EXPLICIT["auth.apiToken"],
                                         "metrics-token": EXPLICIT["auth.metricsToken"]}  # fmt: skip
    assert decoded["r-slimray-ray-token"] == {"auth_token": EXPLICIT["ray.cluster.token"]}
    _, files, _ = _api(docs)
    assert files["SLIMRAY_API_TOKEN"]["name"] == "r-slimray-auth"
    cluster = next(d for d in docs if d["kind"] == "RayCluster")
    assert cluster["spec"]["authOptions"]["secretName"] == "r-slimray-ray-token"
    assert files["SLIMRAY_RAY_TOKEN"]["name"] == "r-slimray-ray-token"


def test_a_metrics_token_alone_leaves_the_admin_token_to_the_service():
    docs = helm_template(sets=("auth.metricsToken=" + EXPLICIT["auth.metricsToken"],))
    (secret,) = [d for d in docs if d["kind"] == "Secret"]
    assert set(secret["data"]) == {"metrics-token"}
    _, files, _ = _api(docs)
    assert "SLIMRAY_API_TOKEN" not in files and "SLIMRAY_METRICS_TOKEN" in files


@pytest.mark.parametrize("field", ["auth.apiToken", "auth.metricsToken", "ray.cluster.token"])
def test_a_short_token_is_refused_naming_the_field(field):
    proc = _helm("--set", f"{field}=short")
    assert proc.returncode != 0 and "/" + re.sub(r"\.", "/", field) in proc.stderr, proc.stderr


def _images(docs: list[dict]) -> dict[str, str]:
    return {f"{where} {c['name']}": c["image"] for d in docs for where, pod in pod_specs(d)
            for c in pod.get("containers", []) + pod.get("initContainers", [])}  # fmt: skip


def test_digests_pin_every_image_the_chart_renders():
    sets = (f"image.digest={DIGEST}", f"image.gpuDigest={GPU_DIGEST}")
    images = _images(helm_template(VALUES["all-on"][0], sets=sets))
    repo = "registry.example.com/ml/slimray"
    assert len(images) >= 5  # api, test pod, Ray head, cpu and gpu workers
    gpu = {k for k in images if " gpu " in k}
    assert gpu and all(images[k] == f"{repo}@{GPU_DIGEST}" for k in gpu), images
    assert all(images[k] == f"{repo}@{DIGEST}" for k in set(images) - gpu), images


def test_a_digest_without_the_gpu_images_digest_or_in_a_bad_format_is_refused():
    proc = _helm("--set", f"image.digest={DIGEST}")
    assert proc.returncode != 0 and "image.gpuDigest" in proc.stderr and '"gpu"' in proc.stderr, proc.stderr
    proc = _helm("--set", "image.digest=sha256:1234")
    assert proc.returncode != 0 and "/image/digest" in proc.stderr, proc.stderr
    # a group with an image of its own pins it with its own digest
    own = ("ray.cluster.workerGroups[0].name=big", "ray.cluster.workerGroups[0].replicas=1",
           "ray.cluster.workerGroups[0].minReplicas=0", "ray.cluster.workerGroups[0].maxReplicas=1",
           "ray.cluster.workerGroups[0].gpus=2", "ray.cluster.workerGroups[0].resources.requests.cpu=1",
           "ray.cluster.workerGroups[0].resources.limits.cpu=1",
           "ray.cluster.workerGroups[0].image.repository=cuda/slimray",
           f"ray.cluster.workerGroups[0].image.digest={GPU_DIGEST}", f"image.digest={DIGEST}")  # fmt: skip
    images = _images(helm_template(sets=own))
    assert images["RayCluster/r-slimray-ray big ray-worker"] == f"cuda/slimray@{GPU_DIGEST}", images


def _empty_dirs(docs: list[dict]) -> list[tuple[str, dict]]:
    return [(f"{where} {v['name']}", v["emptyDir"]) for d in docs for where, pod in pod_specs(d)
            for v in pod.get("volumes", []) if "emptyDir" in v]  # fmt: skip


@pytest.mark.parametrize("values", list(VALUES))
def test_every_empty_dir_the_chart_renders_has_a_size_limit(values):
    dirs = _empty_dirs(helm_template(*VALUES[values]))
    assert dirs and [where for where, e in dirs if not e.get("sizeLimit")] == []


def test_the_ray_tmp_size_limit_is_a_value_and_k8s_sets_one_everywhere():
    docs = helm_template(sets=("ray.cluster.tmpSizeLimit=3Gi", "tmpSizeLimit=512Mi"))
    limits = {where: e["sizeLimit"] for where, e in _empty_dirs(docs)}
    assert {v for k, v in limits.items() if k.startswith("RayCluster/")} == {"3Gi"}, limits
    assert {v for k, v in limits.items() if k.startswith("Deployment/")} == {"512Mi"}, limits
    k8s = [d for p in sorted((ROOT / "k8s").glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]
    assert [where for where, e in _empty_dirs(k8s) if not e.get("sizeLimit")] == []
