"""The image, proven without a Docker engine: hadolint is clean, the build is multi-stage with no
compilers in the final stage, the Dockerfile's own install command resolves against the registry
with the pins the code wants, and every command KubeRay v1.7 execs in a Ray container exists."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.conftest import REQUIRE_TOOLS, need_tool

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
# What KubeRay v1.7 runs in the Ray container (ray-operator/controllers/ray/common/pod.go, job.go):
# `bash -c "ulimit -n ...; ray start ..."`, probes `bash -c "wget ... | grep success && ..."`, the
# submitter's `until python -c "import urllib.request ..."; do ...; sleep 2; done; ray job submit`.
KUBERAY_EXECS = ("bash", "sh", "wget", "grep", "sleep", "python", "ray")


def _stages() -> list[list[str]]:
    """Instructions (continuation lines joined) grouped by build stage."""
    text = re.sub(r"[ \t]*\\\n\s*", " ", DOCKERFILE.read_text())
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


@pytest.mark.parametrize("dockerfile", [DOCKERFILE, ROOT / "service/tools/base_image/Dockerfile"],
                         ids=["image", "base_image"])  # fmt: skip
def test_hadolint_is_clean(dockerfile):
    hadolint = need_tool("hadolint")
    proc = subprocess.run([hadolint, str(dockerfile)], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "", proc.stdout + proc.stderr


def test_a_builder_stage_makes_the_wheel_and_the_final_stage_only_installs_it():
    builder, final = _stages()[0], _stages()[-1]
    assert builder[0].endswith("AS builder") and any("python -m build --wheel" in i for i in builder)
    assert any(i.startswith("COPY --from=builder") for i in final)
    assert not any(re.search(r"\b(gcc|g\+\+|build-essential|python -m build)\b", i) for i in final)
    assert any(re.fullmatch(r"USER \$\{SLIMRAY_UID\}", i) for i in final) and _arg("SLIMRAY_UID") != "0"
    assert any(i.startswith("HEALTHCHECK") for i in final) and any(i.startswith("LABEL") for i in final)
    assert _arg("PYTHON_IMAGE").startswith("python:3.11")


def _pip_installs(stage: list[str]) -> list[list[str]]:
    """The stage's `pip install` commands, each split into words (one RUN may hold several)."""
    commands = []
    for instruction in stage:
        if instruction.startswith("RUN "):
            for part in re.split(r"&&|;|\bthen\b", instruction):
                words = shlex.split(part.strip()) if "pip install" in part else []
                if words[:2] == ["pip", "install"]:
                    commands.append(words)
    return commands


def _lock(extra: str) -> dict[str, str]:
    """service/requirements-<extra>.lock as {normalized name: pinned version}; every entry is an
    exact pin with at least one sha256 hash (what `pip install --require-hashes` needs)."""
    text = (ROOT / "service" / f"requirements-{extra}.lock").read_text()
    entries = re.findall(r"^(\S+)==(\S+)((?:\s*\\\n\s+--hash=sha256:[0-9a-f]{64})+)", text, re.M)
    names = [line.split()[0] for line in text.splitlines() if line and not line[0].isspace()
             and not line.startswith("#")]  # fmt: skip
    assert len(entries) == len(names) > 0, "an entry of the lock is not an exact pin with hashes"
    return {re.sub(r"[-_.]+", "-", name.lower()): version for name, version, _ in entries}


def test_the_image_installs_the_locked_stack_then_slimray_without_dependencies():
    """The final stage installs service/requirements-${TF_EXTRA}.lock with --require-hashes (every
    package pinned and verified), then the slimray wheel with --no-deps, then `pip check` proves the
    lock holds all that slimray[<tf>,train,service] needs."""
    final = _stages()[-1]
    installs = _pip_installs(final)
    locked = [c for c in installs if "--require-hashes" in c]
    assert len(locked) == 1 and locked[0][-2:] == ["-r", "/usr/local/share/slimray/requirements.lock"]
    assert "COPY service/requirements-${TF_EXTRA}.lock /usr/local/share/slimray/requirements.lock" in final
    wheel = [c for c in installs if any(w.startswith("/wheels/slimray-") for w in c)]
    assert len(wheel) == 1 and "--no-deps" in wheel[0]
    assert wheel[0][-1].endswith("[${TF_EXTRA},train,service]") and _arg("TF_EXTRA") == "cpu"
    assert any("&& pip check" in i for i in final)
    # the lock's layer comes before the code's: a code change does not reinstall the stack
    lock_layer = next(i for i in final if "--require-hashes" in i)
    assert final.index(lock_layer) < final.index("COPY --from=builder /wheels/ /wheels/")
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'gpu = ["tensorflow[and-cuda]' in pyproject  # what --build-arg TF_EXTRA=gpu selects


def _pyproject_requirements(*extras: str) -> list[Requirement]:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra in extras:
        lines += project["optional-dependencies"][extra]
    return [Requirement(line) for line in lines]


@pytest.mark.parametrize("extra", ["cpu", "gpu"])
def test_the_lock_pins_what_the_image_needs_within_the_projects_ranges(extra):
    pins = _lock(extra)
    for req in _pyproject_requirements(extra, "train", "service"):
        name = re.sub(r"[-_.]+", "-", req.name.lower())
        pinned = pins.get(name)
        assert pinned and req.specifier.contains(pinned, prereleases=True), (str(req), pinned)
        for sub in req.extras:  # ray[train,default], tensorflow[and-cuda]: a few of their packages
            assert {"train": "pyarrow", "default": "aiohttp", "and-cuda": "nvidia-cudnn-cu12"}[sub] in pins
    assert pins["ray"].startswith("2.60.") and pins["keras"].startswith("3.15.")
    tensorflow = "tensorflow-cpu" if extra == "cpu" else "tensorflow"
    assert pins[tensorflow].startswith("2.21.")
    for package in ("aiohttp", "fastapi", "uvicorn", "prometheus-client", "pyarrow"):
        assert package in pins, package
    assert not any(name.startswith("horovod") for name in pins)
    if extra == "cpu":
        assert "tensorflow" not in pins and not any(name.startswith("nvidia-") for name in pins)


def test_the_gpu_lock_differs_from_the_cpu_lock_only_in_tensorflow_and_cuda():
    cpu, gpu = _lock("cpu"), _lock("gpu")
    shared = cpu.keys() & gpu.keys()
    assert {name: cpu[name] for name in shared} == {name: gpu[name] for name in shared}
    assert cpu.keys() - gpu.keys() == {"tensorflow-cpu"}
    assert all(n == "tensorflow" or n.startswith("nvidia-") for n in gpu.keys() - cpu.keys())
    assert gpu["tensorflow"] == cpu["tensorflow-cpu"]


def test_the_image_runs_the_versions_the_suite_tests():
    """Every package of the image's lock that this venv has, at the lock's version: the suite
    tests what the image ships (`make lock` re-pins both from pyproject.toml)."""
    from importlib.metadata import distributions

    venv = {re.sub(r"[-_.]+", "-", d.metadata["Name"].lower()): d.version for d in distributions()}
    for extra in ("cpu", "dev"):
        installer = {"pip", "setuptools", "wheel"}  # the venv keeps its own
        differ = {name: (version, venv[name]) for name, version in _lock(extra).items()
                  if name in venv and venv[name] != version and name not in installer}  # fmt: skip
        assert not differ, f"requirements-{extra}.lock vs this venv (lock, venv): {differ}"


def test_build_secrets_never_reach_the_image():
    """The CA bundle for a TLS-intercepting proxy is a BuildKit secret mounted only for the RUN
    steps that fetch from PyPI (pip reads it through PIP_CERT); no ENV, ARG, COPY or ADD carries a
    certificate, and no `# syntax=` line makes BuildKit pull a frontend image from a registry."""
    text = DOCKERFILE.read_text()
    assert not re.search(r"^#\s*syntax\s*=", text, re.M | re.I)
    for stage in _stages():
        for instruction in stage:
            keyword = instruction.split()[0]
            if keyword in {"ENV", "ARG", "COPY", "ADD", "LABEL"}:
                assert not re.search(r"cert|\.pem|\.crt|/run/secrets|secret", instruction, re.I), instruction
            if keyword == "RUN" and ("pip install" in instruction or "python -m build" in instruction):
                assert instruction.startswith("RUN --mount=type=secret,id=ca "), instruction
                assert "export PIP_CERT=/run/secrets/ca" in instruction, instruction
            if "/run/secrets/ca" in instruction:
                copied = re.search(r"\b(cp|cat|tee|install|ln)\b[^&;]*/run/secrets/ca", instruction)
                assert not copied, instruction


def test_the_image_runs_with_a_read_only_root_and_group_writable_files():
    """HOME under /tmp (an emptyDir in every pod): Ray writes $HOME/.ray/auth_token and creates the
    folder; SLIMRAY_UMASK=0007 makes slimray's files group-writable (group 0, arbitrary UIDs)."""
    env = " ".join(i for i in _stages()[-1] if i.startswith("ENV "))
    assert re.search(r"\bHOME=/tmp/\S+", env) and re.search(r"\bSLIMRAY_UMASK=0007\b", env)
    for name in ("KERAS_HOME", "MPLCONFIGDIR"):
        assert re.search(rf"\b{name}=/tmp/", env), name


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
    """One horovod stage whose RUN does nothing but `mkdir /horovod-wheels` unless HOROVOD=1: no
    stage is chosen by a build arg, so the classic builder (which builds every stage up to the
    target) costs nothing for it either; every stage before the final one is used by it."""
    stages = {s[0].split(" AS ")[-1]: s for s in _stages() if " AS " in s[0]}
    assert set(stages) == {"builder", "horovod"}
    assert not any(re.match(r"FROM \S*\$", s[0]) and "PYTHON_IMAGE" not in s[0] for s in _stages())
    horovod = stages["horovod"]
    assert "ARG HOROVOD=0" in horovod
    runs = [i for i in horovod if i.startswith("RUN ")]
    off = 'if [ "${HOROVOD}" != 1 ]; then mkdir /horovod-wheels; exit 0; fi && '
    assert len(runs) == 1 and runs[0].startswith(f"RUN --mount=type=secret,id=ca {off}"), runs
    assert "tools/build_horovod.sh python /horovod-wheels" in runs[0]
    assert 'if [ "${TF_EXTRA}" != cpu ]' in runs[0]  # a GPU build is refused, with the reason
    assert "pip install --no-cache-dir --require-hashes -r requirements.lock" in runs[0]  # the same TF
    # what the stage copies: the lock and the two build scripts, so a code change does not rebuild it
    copies = [i for i in horovod if i.startswith("COPY ")]
    assert copies == [
        "COPY service/requirements-${TF_EXTRA}.lock requirements.lock",
        "COPY service/tools/build_horovod.sh service/tools/patch_horovod.py tools/",
    ]
    final = _stages()[-1]
    assert "COPY --from=horovod /horovod-wheels/ /wheels/" in final
    assert any("pip install --no-cache-dir /wheels/horovod-*.whl" in i for i in final)
