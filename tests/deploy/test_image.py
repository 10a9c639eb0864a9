"""What the built image holds: no compiler in the final stage, and no CA bundle or certificate
setting in its history or config (a build-time secret baked into a layer or its metadata). The
build may point pip at the BuildKit secret mount (`PIP_CERT=/run/secrets/<id>` inside a RUN): that
path is in no layer, and its content never reaches the history."""

from __future__ import annotations

import re

from tests.deploy.machine import docker

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
