"""What the built image holds: no compiler in the final stage, and no CA bundle or certificate
setting in its history or config (a build-time secret baked into a layer or its metadata). The
build may point pip at the BuildKit secret mount (`PIP_CERT=/run/secrets/<id>` inside a RUN): that
path is in no layer, and its content never reaches the history."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import time

from tests.deploy.machine import DOCKER, docker

COMPILERS = ("gcc", "cc", "g++", "c++", "clang")
CERT_SETTINGS = ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE")
SECRET_MOUNTS = "/run/secrets/"


def test_the_image_has_no_compiler(image):
    proc = docker(
        "run",
        "--rm",
        "--network",
        "host",
        "--entrypoint",
        "sh",
        image,
        "-c",
        f"command -v {' '.join(COMPILERS)}",
    )
    assert proc.stdout.strip() == "", f"compilers in {image}: {proc.stdout}"


def test_the_image_history_holds_no_certificate_or_pip_cert_setting(image):
    history = docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", image)
    assert history.returncode == 0, history.stderr
    config = docker("image", "inspect", "--format", "{{json .Config.Env}} {{json .Config.Labels}}", image)
    assert "BEGIN CERTIFICATE" not in history.stdout + config.stdout
    assert [s for s in CERT_SETTINGS if f"{s}=" in config.stdout] == [], config.stdout  # no ENV setting
    settings = re.findall(rf"\b({'|'.join(CERT_SETTINGS)})=(\S*)", history.stdout)  # ARG, ENV, RUN
    assert [(k, v) for k, v in settings if not v.startswith(SECRET_MOUNTS)] == [], settings


# a restricted pod: read-only root, /tmp a tmpfs, any UID in group 0 (OpenShift), no capabilities
RESTRICTED = ("--network", "host", "--read-only", "--tmpfs", "/tmp:rw,exec,mode=1777", "--user", "12345:0",
              "--cap-drop", "ALL", "--security-opt", "no-new-privileges")  # fmt: skip


def test_serve_local_runs_a_job_with_a_read_only_root_and_an_arbitrary_uid(image, tmp_path):
    """As a restricted pod runs it: read-only root, /tmp a tmpfs, any UID in group 0 (OpenShift),
    no capabilities, the state on a volume."""
    import httpx

    from tests.deploy.chart_stack import TERMINAL, TINY_SPEC
    from tests.service_helpers import free_port

    state = tmp_path / "state"
    state.mkdir()
    os.chown(state, os.getuid(), 0)
    state.chmod(0o2770)  # as fsGroup 0 makes a volume: group 0 may write
    port, ray_port, gcs_port, token = free_port(), free_port(), free_port(), "a-test-admin-token"
    name = f"slimray-test-{os.getpid()}-serve-local"
    started = docker("run", "-d", "--name", name, *RESTRICTED, "-v", f"{state}:/var/lib/slimray",
                     "-e", f"SLIMRAY_API_TOKEN={token}", "-e", f"SLIMRAY_RAY_ADDRESS=http://127.0.0.1:{ray_port}",
                     "-e", f"SLIMRAY_RAY_GCS_PORT={gcs_port}", image, "slimray", "serve", "--local",
                     "--host", "127.0.0.1", "--port", str(port), "--num-cpus", "2")  # fmt: skip
    assert started.returncode == 0, started.stderr
    url, auth = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {token}"}
    try:
        job, deadline = None, time.time() + 300
        while time.time() < deadline and (job is None or job["state"] not in TERMINAL):
            time.sleep(2)
            with contextlib.suppress(httpx.HTTPError):
                if job is None:
                    spec = {**TINY_SPEC, "train": {**TINY_SPEC["train"], "steps": 20}, "prune": None}
                    created = httpx.post(f"{url}/v1/jobs", json=spec, headers=auth, timeout=60)
                    job = created.json() if created.status_code == 201 else None
                else:
                    job = httpx.get(f"{url}/v1/jobs/{job['id']}", headers=auth, timeout=10).json()
        logs = docker("logs", name)
        assert job and job["state"] == "succeeded", f"{job}\n{logs.stdout}{logs.stderr}"
    finally:
        docker("rm", "-f", name)


def test_slimray_run_with_a_read_only_root_writes_a_group_writable_run(image, tmp_path):
    """An embedded Ray writes its token to $HOME/.ray: with HOME in the read-only root this failed
    (`OSError: [Errno 30] Read-only file system: '/home/slimray/.ray'`). Run files are group 0's
    to write (SLIMRAY_UMASK), whatever UID wrote them."""
    import yaml

    runs = tmp_path / "runs"
    runs.mkdir()
    os.chown(runs, os.getuid(), 0)
    runs.chmod(0o2770)
    job = {"name": "tiny", "model": {"source": "seed_cnn"}, "data": {"source": "digits"},
           "train": {"steps": 6, "batch_size": 16, "checkpoint_every": 3}, "scaling": {"num_workers": 1},
           "output": {"dir": "/runs/tiny"}}  # fmt: skip
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    (tmp_path / "job.yaml").chmod(0o644)
    mounts = ("-v", f"{tmp_path / 'job.yaml'}:/job.yaml:ro", "-v", f"{runs}:/runs")
    proc = docker("run", "--rm", *RESTRICTED, *mounts, image, "slimray", "run", "/job.yaml", "--quiet",
                  timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    written = [p for p in (runs / "tiny").rglob("*")]
    assert (runs / "tiny" / "report.json").exists() and written
    not_shared = [(str(p), oct(p.stat().st_mode & 0o777), p.stat().st_gid) for p in written
                  if p.stat().st_gid != 0 or not p.stat().st_mode & 0o020]  # fmt: skip
    assert not_shared == []


def test_the_stand_in_base_carries_no_resolver_or_hostname_of_the_build_machine(image):
    """debootstrap copies the build machine's /etc/resolv.conf and /etc/hostname into the stand-in
    base (service/tools/base_image/make_base.sh); an image pushed to a registry would publish them.
    Read from the saved layer itself: a container's own files hide the image's."""
    import io
    import tarfile

    rootfs = "slimray-base:bookworm-rootfs-2"
    if docker("image", "inspect", rootfs).returncode != 0:
        return  # the official base is in use: no debootstrap ran here
    saved = subprocess.run([DOCKER, "save", rootfs], capture_output=True, timeout=300)
    assert saved.returncode == 0, saved.stderr
    leaked = {}
    with tarfile.open(fileobj=io.BytesIO(saved.stdout)) as image_tar:
        for layer in (m for m in image_tar.getmembers() if m.name.endswith("layer.tar")):
            with tarfile.open(fileobj=image_tar.extractfile(layer)) as files:
                for name in ("etc/resolv.conf", "etc/hostname", "./etc/resolv.conf", "./etc/hostname"):
                    try:
                        member = files.getmember(name)
                    except KeyError:
                        continue
                    text = files.extractfile(member).read().decode() if member.isfile() else ""
                    if text.strip():
                        leaked[name] = text.strip()
    assert leaked == {}
