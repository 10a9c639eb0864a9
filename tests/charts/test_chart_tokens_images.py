"""Issue 23 L8: the chart never invents tokens (two `helm template` runs are equal; without
tokens the render fails naming the value; existing Secrets mean no rendered Secret), every image
it renders can be pinned by digest, and every emptyDir has a size limit (chart and k8s/)."""

from __future__ import annotations

import base64
import subprocess

import pytest
import yaml

from tests.charts.k8s_checks import CHART, INSTALLER, ROOT, helm_template, pod_specs
from tests.charts.test_chart import VALUES
from tests.conftest import need_tool

DIGEST, GPU_DIGEST = "sha256:" + "a" * 64, "sha256:" + "b" * 64


def _helm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([need_tool("helm"), "template", "r", str(CHART), "--namespace", "ml", *args],
                          capture_output=True, text=True)  # fmt: skip


@pytest.mark.parametrize("values", list(VALUES))
def test_two_renders_are_identical(values):
    """Regression: `lookup` finds nothing under `helm template`, and the chart made new random
    tokens at every render (GitOps: every sync changed the Secrets, running jobs' tokens broke)."""
    args = [a for v in VALUES[values] for a in ("-f", str(v))]
    first, second = _helm(*args), _helm(*args)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout


@pytest.mark.parametrize(("sets", "named"), [
    ((), ("auth.apiToken", "auth.existingSecret")),
    (("auth.apiToken=an-admin-token-0123",), ("ray.cluster.token", "ray.tokenSecret")),
    (("auth.existingSecret=mine",), ("ray.cluster.token", "ray.tokenSecret")),
    (("auth.apiToken=an-admin-token-0123", "ray.cluster.token=a-ray-token-012345",
      "monitoring.serviceMonitor.enabled=true"), ("auth.metricsToken",)),
])  # fmt: skip
def test_without_tokens_the_render_fails_naming_the_values(sets, named):
    proc = _helm(*[a for s in sets for a in ("--set", s)])
    assert proc.returncode != 0, proc.stdout
    assert all(name in proc.stderr for name in named), proc.stderr


def test_existing_secrets_mean_no_rendered_secret_and_are_used_everywhere():
    docs = helm_template(*VALUES["object-store"])  # auth.existingSecret, ray.tokenSecret (over INSTALLER)
    assert not [d["metadata"]["name"] for d in docs if d["kind"] == "Secret"]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["SLIMRAY_API_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "slimray-auth"
    assert env["SLIMRAY_RAY_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "slimray-ray-token",
                                                                    "key": "auth_token"}  # fmt: skip
    cluster = next(d for d in docs if d["kind"] == "RayCluster")
    assert cluster["spec"]["authOptions"]["secretName"] == "slimray-ray-token"


def test_explicit_tokens_are_rendered_as_given():
    docs = helm_template(INSTALLER)
    given = yaml.safe_load(INSTALLER.read_text())
    secrets = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "Secret"}
    decoded = {
        name: {k: base64.b64decode(v).decode() for k, v in data.items()} for name, data in secrets.items()
    }
    auth = given["auth"]
    assert decoded["r-slimray-auth"] == {"api-token": auth["apiToken"], "metrics-token": auth["metricsToken"]}
    assert decoded["r-slimray-ray-token"] == {"auth_token": given["ray"]["cluster"]["token"]}


def test_a_short_token_is_refused_naming_the_field():
    proc = _helm("-f", str(INSTALLER), "--set", "auth.apiToken=short")
    assert proc.returncode != 0 and "/auth/apiToken" in proc.stderr, proc.stderr


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
    proc = _helm("-f", str(INSTALLER), "--set", f"image.digest={DIGEST}")
    assert proc.returncode != 0 and "image.gpuDigest" in proc.stderr and '"gpu"' in proc.stderr, proc.stderr
    proc = _helm("-f", str(INSTALLER), "--set", "image.digest=sha256:1234")
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
