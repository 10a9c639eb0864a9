"""A real S3 API on loopback: moto's server as its own process (not an in-process mock), with
the standard AWS environment variables pointing at it, so pyarrow, Ray Data and Ray Train reach
it over HTTP exactly as they would reach S3."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import need_tool
from tests.service_helpers import free_port

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
               "AWS_EC2_METADATA_DISABLED": "true"}  # fmt: skip


@dataclass(frozen=True)
class S3:
    endpoint: str
    env: dict[str, str]

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


@contextlib.contextmanager
def moto_server(tmp_path: Path, enforce_auth: bool = False) -> Iterator[S3]:
    """moto's S3 on 127.0.0.1:<free port>; os.environ carries its endpoint and test credentials
    while the context is open (Ray workers get them through runtime_env). `enforce_auth`: every
    request needs credentials moto's IAM knows (none do), as S3 refuses unknown or missing keys."""
    need_tool("moto_server")  # moto[server] is installed; its app runs through our launcher
    port = free_port()
    launcher = Path(__file__).with_name("moto_s3_server.py")
    server_env = {**os.environ, **({"INITIAL_NO_AUTH_ACTION_COUNT": "0"} if enforce_auth else {})}
    proc = subprocess.Popen([sys.executable, str(launcher), "127.0.0.1", str(port)], env=server_env,
                            stdout=(tmp_path / "moto.log").open("w"), stderr=subprocess.STDOUT)  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    env = {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint, "AWS_ENDPOINT_URL_S3": endpoint}
    saved = {k: os.environ.get(k) for k in env}
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(endpoint, timeout=1)
                break
            time.sleep(0.2)
        os.environ.update(env)
        yield S3(endpoint, env)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        proc.terminate()
        proc.wait(10)
