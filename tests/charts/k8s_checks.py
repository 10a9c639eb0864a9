"""Offline Kubernetes checks shared by the chart and k8s/ tests: rendering with helm, built-in
kinds with kubernetes-validate, custom resources against their CRDs' openAPIV3Schema (unknown
fields refused, as the API server's strict field validation does), and the restricted Pod
Security Standard, field by field."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.conftest import REQUIRE_TOOLS, need_tool

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "slimray"
# the CRDs beside the checkout (../shared/k8s-crds), or where SLIMRAY_K8S_CRDS says
CRDS = Path(os.environ.get("SLIMRAY_K8S_CRDS", ROOT.parent / "shared" / "k8s-crds"))
KUBERNETES_VERSION = "1.35.0"
CUSTOM_GROUPS = ("ray.io", "monitoring.coreos.com")


def helm_template(*values: Path, sets: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """`helm template` of the chart with `values` files and `sets`, parsed."""
    helm = need_tool("helm")
    args = [helm, "template", "r", str(CHART), "--namespace", "ml"]
    for v in values:
        args += ["-f", str(v)]
    for s in sets:
        args += ["--set", s]
    proc = subprocess.run(args, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def is_custom(doc: dict[str, Any]) -> bool:
    return doc["apiVersion"].split("/")[0] in CUSTOM_GROUPS


def _crd_schema(doc: dict[str, Any]) -> dict[str, Any]:
    if not CRDS.is_dir():
        message = f"the CRD schemas are not at {CRDS} (set SLIMRAY_K8S_CRDS)"
        if REQUIRE_TOOLS:
            pytest.fail(message + " (SLIMRAY_REQUIRE_TOOLS=1)")
        pytest.skip(message)
    group, version = doc["apiVersion"].split("/")
    for path in CRDS.glob(f"{group}_*.yaml"):
        crd = yaml.safe_load(path.read_text())
        if crd["spec"]["names"]["kind"] == doc["kind"]:
            for v in crd["spec"]["versions"]:
                if v["name"] == version:
                    return v["schema"]["openAPIV3Schema"]
    raise AssertionError(f"no CRD for {doc['apiVersion']} {doc['kind']} in {CRDS}")


def _unknown_fields(value: Any, schema: dict[str, Any], path: str) -> Iterator[str]:
    if (
        isinstance(value, dict)
        and "properties" in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        for key, item in value.items():
            if key in schema["properties"]:
                yield from _unknown_fields(item, schema["properties"][key], f"{path}.{key}")
            elif key not in ("apiVersion", "kind", "metadata") or path:
                yield f"{path}.{key}"
    elif isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        for key, item in value.items():
            yield from _unknown_fields(item, schema["additionalProperties"], f"{path}.{key}")
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            yield from _unknown_fields(item, schema["items"], f"{path}[{i}]")


def crd_problems(doc: dict[str, Any]) -> list[str]:
    schema = _crd_schema(doc)
    validator = jsonschema.Draft7Validator(schema)
    problems = [
        f"{'.'.join(str(p) for p in e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)
    ]
    return problems + [f"unknown field {p}" for p in _unknown_fields(doc, schema, "")]


def kubernetes_validate(docs: list[dict[str, Any]], tmp_path: Path) -> None:
    tool = need_tool("kubernetes-validate")
    files = []
    for i, doc in enumerate(docs):
        path = tmp_path / f"{i:02d}-{doc['kind']}.yaml"
        path.write_text(yaml.safe_dump(doc))
        files.append(str(path))
    proc = subprocess.run([tool, "--strict", "-k", KUBERNETES_VERSION, "--quiet", *files],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def pod_specs(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, pod spec) for every pod a document makes."""
    kind, spec = doc["kind"], doc.get("spec", {})
    name = f"{kind}/{doc['metadata']['name']}"
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        yield name, spec["template"]["spec"]
    elif kind == "Pod":
        yield name, spec
    elif kind == "RayCluster":
        yield from _ray_pods(name, spec)
    elif kind == "RayJob":
        yield from _ray_pods(name, spec["rayClusterSpec"])
        if "submitterPodTemplate" in spec:
            yield f"{name} submitter", spec["submitterPodTemplate"]["spec"]


def _ray_pods(name: str, cluster: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    yield f"{name} head", cluster["headGroupSpec"]["template"]["spec"]
    for group in cluster.get("workerGroupSpecs", []):
        yield f"{name} {group['groupName']}", group["template"]["spec"]


RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                      "projected", "secret"}  # fmt: skip


def restricted_violations(where: str, pod: dict[str, Any]) -> list[str]:
    """The restricted Pod Security Standard (v1.35), plus this project's own rules: read-only
    root filesystems and requests and limits on every container."""
    bad = []
    psc = pod.get("securityContext", {})
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(flag):
            bad.append(f"{where}: {flag}")
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            bad.append(f"{where}: volume {volume['name']} of type {kinds - RESTRICTED_VOLUMES}")
    for c in pod.get("containers", []) + pod.get("initContainers", []):
        at, sc = f"{where} container {c['name']}", c.get("securityContext", {})
        if sc.get("privileged"):
            bad.append(f"{at}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            bad.append(f"{at}: allowPrivilegeEscalation is not false")
        if "ALL" not in sc.get("capabilities", {}).get("drop", []):
            bad.append(f"{at}: capabilities.drop lacks ALL")
        if set(sc.get("capabilities", {}).get("add", [])) - {"NET_BIND_SERVICE"}:
            bad.append(f"{at}: adds capabilities")
        if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")) or sc.get("runAsNonRoot") is False:
            bad.append(f"{at}: runAsNonRoot")
        if 0 in (sc.get("runAsUser"), psc.get("runAsUser")):
            bad.append(f"{at}: runs as UID 0")
        seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            bad.append(f"{at}: seccompProfile {seccomp}")
        if any(p.get("hostPort") for p in c.get("ports", [])):
            bad.append(f"{at}: hostPort")
        if sc.get("readOnlyRootFilesystem") is not True:
            bad.append(f"{at}: root filesystem is writable")
        resources = c.get("resources", {})
        for part in ("requests", "limits"):
            if not {"cpu", "memory"} <= set(resources.get(part, {})):
                bad.append(f"{at}: no cpu/memory {part}")
    return bad
