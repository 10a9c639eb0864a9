"""The image, proven without a Docker engine: hadolint is clean, the build is multi-stage with no
compilers in the final stage, the Dockerfile's own install command resolves against the registry
with the pins the code wants, and every command KubeRay v1.7 execs in a Ray container exists."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REQUIRE_TOOLS, need_tool

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
# What KubeRay v1.7 runs in the Ray container (ray-operator/controllers/ray/common/pod.go, job.go):
# `bash -c "ulimit -n ...; ray start ..."`, probes `bash -c "wget ... | grep success && ..."`, the
# submitter's `until python -c "import urllib.request ..."; do ...; sleep 2; done; ray job submit`.
KUBERAY_EXECS = ("bash", "sh", "wget", "grep", "sleep", "python", "ray")


def _stages() -> list[list[str]]:
    """Instructions (continuation lines joined) grouped by build stage."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    stages: list[list[str]] = []
    for line in lines:
        if line.startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def _arg(name: str) -> str:
    match = re.search(rf"^ARG {name}=(\S+)", DOCKERFILE.read_text(), re.M)
    assert match, f"ARG {name} has no default"
    return match.group(1)


def test_hadolint_is_clean():
    hadolint = need_tool("hadolint")
    proc = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "", proc.stdout + proc.stderr


def test_a_builder_stage_makes_the_wheel_and_the_final_stage_only_installs_it():
    builder, final = _stages()[0], _stages()[-1]
    assert builder[0].endswith("AS builder") and any("python -m build --wheel" in i for i in builder)
    assert any(i.startswith("COPY --from=builder") for i in final)
    assert not any(re.search(r"\b(gcc|g\+\+|build-essential|python -m build)\b", i) for i in final)
    assert any(re.fullmatch(r"USER \$\{SLIMRAY_UID\}", i) for i in final) and _arg("SLIMRAY_UID") != "0"
    assert any(i.startswith("HEALTHCHECK") for i in final) and any(i.startswith("LABEL") for i in final)
    assert _arg("PYTHON_IMAGE").startswith("python:3.11")


def _install_command() -> list[str]:
    final = _stages()[-1]
    runs = [i for i in final if i.startswith("RUN pip install")]
    assert len(runs) == 1, runs
    return shlex.split(runs[0].removeprefix("RUN ").split("&&")[0])


def test_the_image_installs_slimray_with_the_train_and_service_extras_and_cpu_tf_by_default():
    target = _install_command()[-1]
    assert target.endswith("[${TF_EXTRA},train,service]") and _arg("TF_EXTRA") == "cpu"
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'gpu = ["tensorflow[and-cuda]' in pyproject  # what --build-arg TF_EXTRA=gpu selects


@pytest.mark.timeout(1200)
def test_the_dockerfiles_install_command_resolves_with_the_pinned_stack(tmp_path):
    """The same pip command, on the same project (the wheel is built from it), with --dry-run."""
    command = _install_command()
    extras = command[-1].split("[", 1)[1].replace("${TF_EXTRA}", _arg("TF_EXTRA"))
    args = [a for a in command[2:-1] if a != "--no-cache-dir"]
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", *args, "--dry-run", "--ignore-installed", "--quiet",
         "--report", str(report), f"{ROOT}[{extras}"],
        capture_output=True, text=True, timeout=1100,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    installed = {re.sub(r"[-_.]+", "-", i["metadata"]["name"].lower()): i["metadata"]["version"]
                 for i in json.loads(report.read_text())["install"]}  # fmt: skip
    assert installed["ray"].startswith("2.60.")
    assert installed["tensorflow-cpu"].startswith("2.21.")
    assert installed["keras"].startswith("3.15.")
    for package in ("aiohttp", "fastapi", "uvicorn", "prometheus-client", "pyarrow"):  # ray[default], service
        assert package in installed, package
    assert not any(name.startswith("horovod") for name in installed)


def test_every_command_kuberay_execs_is_in_the_final_stage():
    """bash, sh (dash), grep and sleep (coreutils) are Essential in the Debian release the base
    image is built on (checked here with dpkg on that same release); wget is installed by the
    final stage; python comes with the base image and `ray` with slimray's Ray dependency."""
    release = re.search(r"-(\w+)$", _arg("PYTHON_IMAGE")).group(1)
    os_release = Path("/etc/os-release").read_text()
    if f"VERSION_CODENAME={release}" not in os_release:
        message = f"this machine is not Debian {release}: cannot ask dpkg about the base image"
        if REQUIRE_TOOLS:
            pytest.fail(message + " (SLIMRAY_REQUIRE_TOOLS=1)")
        pytest.skip(message)
    need_tool("dpkg-query")
    essential = {"bash": "bash", "sh": "dash", "grep": "grep", "sleep": "coreutils"}
    for command, package in essential.items():
        proc = subprocess.run(
            ["dpkg-query", "-W", "-f=${Essential}", package], capture_output=True, text=True
        )
        assert proc.stdout == "yes", (command, package, proc.stdout)
    final = " ".join(_stages()[-1])
    assert re.search(r"apt-get install [^&]*\bwget=", final), "wget is not installed"
    assert _arg("PYTHON_IMAGE").startswith("python:")
    ray_scripts = subprocess.run([sys.executable, "-m", "pip", "show", "-f", "ray"], capture_output=True,
                                 text=True).stdout  # fmt: skip
    assert re.search(r"bin/ray$", ray_scripts, re.M), "the ray package provides no `ray` command"
    assert set(KUBERAY_EXECS) == {*essential, "wget", "python", "ray"}


def test_horovod_is_an_optional_stage_built_by_the_repos_script_off_by_default():
    stages = {s[0].split(" AS ")[-1]: s for s in _stages() if " AS " in s[0]}
    assert _arg("HOROVOD") == "0" and stages["horovod"][0] == "FROM horovod-${HOROVOD} AS horovod"
    build = " ".join(stages["horovod-1"])
    assert "service/tools/build_horovod.sh python /horovod-wheels" in build
    assert 'if [ "${TF_EXTRA}" != cpu ]' in build  # a GPU build is refused, with the reason
    assert stages["horovod-0"][1:] == ["RUN mkdir /horovod-wheels"]  # nothing built when off
    final = _stages()[-1]
    assert "COPY --from=horovod /horovod-wheels/ /wheels/" in final
    assert any("pip install --no-cache-dir /wheels/horovod-*.whl" in i for i in final)
